"""What a notebook shows and writes: tables set next to the papers' numbers, the verdicts, gates and
deviations in words, and its files (results.csv, checkpoints.csv and run.json from the sweep; findings.json
from the verdicts)."""
from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from .. import config
from ..core.training.hardware import resolve_device
from ..report.figures import mean_ci_text
from ..report.words import (VERDICT_COLOURS, deviation_line, effect_text, finding_name, interval_text, phase_text,
                            why_text)
from .effects import arm_text, final_metric
from .gates import reason_text

LIB = Path(__file__).parent.parent


def paper_comparison(final: pd.DataFrame, paper: dict[str, dict], by: str = "schedule") -> pd.DataFrame:
    """Ours (mean ± 95% CI half-width over seeds) next to the paper's numbers: one row per value of `by`,
    columns (arm, source). `paper` maps arm -> {value of by: number}; a cell one side lacks shows —."""
    ours = final.groupby([by, "arm"]).value.apply(mean_ci_text).unstack("arm")
    columns = {}
    for arm in ours.columns:
        columns[(arm, "ours")] = ours[arm]
        if arm in paper:
            columns[(arm, "paper")] = pd.Series({k: f"{v:.1f}" for k, v in paper[arm].items()})
    return pd.DataFrame(columns).rename_axis(by).fillna("—")


def metric_table(results: pd.DataFrame, schedule: float, paper: dict[str, tuple[float, ...]] | None = None,
                 metrics: tuple[str, ...] = ("AP", "AP50", "AP75"), split: str = "val") -> pd.DataFrame:
    """The paper's Table 2 shape: AP, AP50, AP75 per arm at one schedule (mean ± 95% CI) on `split` ('val', or
    'test': the held-out scenes), with the paper's rows."""
    rows = {}
    scenes = {"val": "validation", "test": "held-out"}.get(split, split)
    for metric in metrics:
        final = final_metric(results, metric, split)
        final = final[final.schedule == schedule]
        for arm, values in final.groupby("arm").value:
            rows.setdefault(f"{arm} (ours, {schedule:g}x, {scenes} scenes)", {})[metric] = mean_ci_text(values)
    for arm, numbers in (paper or {}).items():
        rows[f"{arm} (paper)"] = {m: f"{v:.1f}" for m, v in zip(metrics, numbers)}
    return pd.DataFrame(rows).T


def gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """zo.cell_gains as the paper prints it: mean ± 95% CI half-width per comparison and augmentation
    level (rows) and label fraction (columns)."""
    table = gains.groupby(["comparison", "aug", "label_fraction"]).value.apply(mean_ci_text).unstack("label_fraction")
    return table.rename(columns=lambda f: f"{f:.0%} labels").fillna("—")  # a comparison that did not run there


CHECKPOINT_COLUMNS = {"accuracy": "upstream accuracy (points)", "nn_accuracy": "1-NN probe accuracy (points)",
                      "loss": "pretext loss", "nt_xent": "pretext loss"}


def checkpoint_table(out_dir: str):
    """Each checkpoint's own final numbers on its upstream validation set, from the report's checkpoints.csv (rows:
    checkpoints, columns: its accuracy and 1-NN probe in points, its pretext loss); empty where the results were
    saved without it. A number a checkpoint does not have (a supervised one has no 1-NN probe) is missing."""
    path = Path(out_dir) / "checkpoints.csv"
    if not path.is_file():  # results saved before checkpoints.csv existed
        print(f"(no {path}: the checkpoints' own numbers were not saved with these results)")
        return pd.DataFrame(index=pd.Index([], name="checkpoint"))
    rows = pd.read_csv(path)
    table = rows.pivot(index="checkpoint", columns="metric", values="value").loc[rows.checkpoint.unique()]
    for column in table.columns:
        table[column] = (table[column] * 100).round(1) if "accuracy" in column else table[column].round(3)
    return table.rename(columns=CHECKPOINT_COLUMNS)


class Readable:
    """A table as a reader sees it: a missing number is a dash, and a footnote under the table says what a dash
    means there (IPython shows its _repr_html_)."""

    def __init__(self, table: pd.DataFrame, dash: str):
        self.table, self.dash = table, dash

    def _repr_html_(self) -> str:
        missing = self.table.isna().to_numpy().any()
        html = self.table.astype(object).where(self.table.notna(), "—").to_html()
        return html + (f"<p><small>— {self.dash}</small></p>" if missing else "")


def verdict_badge(verdict: str) -> str:
    """A verdict in its own colour, never wrapped (inline HTML: the reports render Markdown with it)."""
    return f'<span style="color:{VERDICT_COLOURS[verdict]};white-space:nowrap"><b>{verdict}</b></span>'


def gates_summary(finding: dict) -> str:
    """A finding's gates in a few words: all passed, or which arms failed which gate (at the worst run)."""
    failed = [g for g in finding.get("gates", []) if not g["passed"]]
    if not failed:
        return f"all {len(finding.get('gates', []))} passed"
    named = list(dict.fromkeys(f"{arm_text(g['arm'])}: {g['gate']} ({g['failed_runs']} of {g['runs']} runs)"
                               for g in failed))
    return f"{len(failed)} failed ({'; '.join(named[:2])}{f'; {len(named) - 2} more' if len(named) > 2 else ''})"


def summary_markdown(finding: dict, deviations: list[dict] = ()) -> str:
    """A report's answer for one finding, on its first screen: the verdict with its one-line reason, our primary
    effect beside the paper's, the criterion with its values, the power where undecided, the gates in one line,
    the deviations from protocol v2."""
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    primary = next(c for c in finding["conditions"] if c["primary"])
    why = why_text(finding, most=1)
    changes = [d["change"] for d in deviations if finding["id"] in d["findings"]]
    rows = [("ours", f"{effect_text(finding)}: {primary['label']} ({finding['n_seeds']} seeds)"),
            ("paper", finding.get("paper_effect") or finding["paper"]),
            ("criterion", finding["criterion"]["text"])]
    if primary["status"] == "undecided":
        rows.append(("to decide it", power_text(primary)))
    rows += [("gates", gates_summary(finding)), ("deviations from protocol v2", "; ".join(changes) or "none")]
    lines = [f"### {finding_name(finding)}: {verdict_badge(finding['verdict'])}" + (f" — {why}" if why else ""), "",
             f"*{finding['claim']}*", "", "| | |", "|---|---|"] + [f"| **{k}** | {cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def show_summary(findings: list[dict], deviations: list[dict], out_dir: str) -> None:
    """The report's first screen: a link back to the index, what the results are, then each finding's answer
    (summary_markdown) with its effect plot."""
    from IPython.display import Markdown, display

    from ..report.effect_plots import effect_plot, effect_file, CAPTION
    from ..report import figures

    display(Markdown(f"[← every finding (the index)](../index.html) · These results are the "
                     f"**{phase_text(findings)}**."))
    for finding in findings:
        display(Markdown(summary_markdown(finding, deviations)))
        figures.save(effect_plot(finding), Path(out_dir) / effect_file(finding), caption=CAPTION.format(**finding))


NOT_SETTINGS = ("criteria", "deviations", "from_results", "out_dir", "results_dir")  # shown elsewhere, or no setting


def parameters_table(parameters: dict, notebook: str) -> pd.DataFrame:
    """The settings the notebook's code names (config/study.yaml under its profile, the parameters cell, papermill),
    one row each, in words: lists joined, mappings as key: value. The gates' thresholds are in the gates table; the
    criteria in the summary; run.json records every parameter."""
    code = "\n".join(line for line in (config.ROOT / "notebooks" / f"{notebook}.py").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    text = lambda v: (", ".join(map(str, v)) if isinstance(v, list) else
                      "; ".join(f"{k}: {w}" for k, w in v.items()) if isinstance(v, dict) else str(v))
    rows = {k: text(v) for k, v in parameters.items() if k in names and k not in NOT_SETTINGS}
    return pd.DataFrame({"value": rows}).rename_axis("setting")


def condition_line(c: dict) -> str:
    """One condition in words: its effect with its interval, what it must be, its status and why."""
    need = f"|·| ≤ {c['value']:g}" if c["op"] == "abs<=" else f"{c['op']} {c['value']:g}"
    need += f", δ {c['delta']:g} ({c['delta_source']})" if c.get("delta") is not None else " (a bound)"
    role = "primary" if c["primary"] else "secondary, Holm-adjusted"
    line = (f"- {c['label']} ({role}): {interval_text(c['estimate'], c['ci_low'], c['ci_high'], c['unit'])}, "
            f"needs {need}: **{c['status']}**")
    if c["status"] == "not tested":
        line += " — " + "; ".join(reason_text(r) for r in c["because"][:3]) + \
                (f"; {len(c['because']) - 3} more" if len(c["because"]) > 3 else "")
    elif c["status"] == "undecided":
        line += f" ({power_text(c)})"
    if c.get("interval") == "pooled cell variances":
        line += " (the interval from the cells' pooled variances: wider than the per-seed means')"
    return line


def verdict_markdown(findings: list[dict]) -> str:
    """A paragraph per finding, written from the computed verdict, its conditions, their gates and power."""
    blocks = []
    for f in findings:
        lines = [f"**{finding_name(f)}: {f['verdict']}** at this scale ({phase_text([f])}, profile `{f['profile']}`). "
                 f"Criterion: {f['criterion']['text']}.", ""]
        lines += [condition_line(c) for c in f["conditions"]]
        if f.get("precondition"):
            p = f["precondition"]
            lines.append(f"- Precondition: {p['label']}: {interval_text(p['estimate'], p['ci_low'], p['ci_high'], '')}"
                         f" needs {p['op']} {p['value']:g}: **{'held' if p['held'] else 'did not hold'}**")
        lines += ["", verdict_sentence(f)]
        if f.get("pretraining_replicates") == 1:
            lines += ["", "One pre-training replicate: every seed fine-tunes the same checkpoint, so pre-training "
                          "noise is not in the interval."]
        for g in f.get("schedule_gains", []):
            where = f" at {g['label_fraction']:.0%} of the data" if "label_fraction" in g else ""
            lines.append(f"{'' if g is not f['schedule_gains'][0] else chr(10)}- {g['arm']}{where}: {g['longest']:g}x − "
                         f"{g['before']:g}x {interval_text(g['estimate'], g['ci_low'], g['ci_high'], 'points')}: "
                         f"{'still gains' if g['still_gains'] else 'no gain shown'} (shown, not judged)")
        for g in f.get("cell_gains", []):
            lines.append(f"- cell {g['init']} init at {g['aug']} with {g['label_fraction']:.0%} of the labels: "
                         f"{interval_text(g['estimate'], g['ci_low'], g['ci_high'], 'points')} (shown, not judged)")
        lines += ["", f"Paper: {f['paper']}"]
        if f.get("paper_effect"):
            lines += ["", f"The paper's effect against ours: {f['paper_effect']} (paper); {effect_text(f)} (ours)."]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def power_text(condition: dict) -> str:
    """An undecided condition's minimum detectable effect and the seeds that would decide its delta (or bound), at
    the observed spread and at its upper 80% bound."""
    p = condition.get("power") or {}
    if p.get("mde") is None:
        return "one seed: no spread to plan with"
    seeds = lambda n: f"{n} seeds" if n else "more than 10,000 seeds"
    return (f"minimum detectable effect {p['mde']:.2f} {condition['unit']} at {condition['n']} seeds; "
            f"{p['target']:g} would be decided by {seeds(p['seeds_needed'])} at the observed sd ({p['sd']:.2f}), "
            f"{seeds(p['seeds_needed_upper'])} at its upper 80% bound ({p['sd_upper']:.2f})")


def verdict_sentence(finding: dict) -> str:
    """Whether the finding held at this scale, in words, from the computed verdict and its true reason."""
    primary = next(c for c in finding["conditions"] if c["primary"])
    if finding["verdict"] == "reproduced":
        small = (primary.get("delta") is not None and
                 (primary["ci_high"] < primary["value"] + primary["delta"] if primary["op"] == ">"
                  else primary["ci_low"] > primary["value"] - primary["delta"]))
        return ("The finding held at this scale: the primary condition's whole interval meets the criterion, on arms "
                "that passed their validity gates" + (", though the whole interval is smaller than δ, the paper's "
                                                      "smallest effect." if small else "."))
    if finding["verdict"] == "not reproduced":
        return ("The finding did not hold at this scale: the primary condition's whole interval lies short of δ "
                "(any effect in the claimed direction is smaller than the paper's smallest) or beyond its bound, on "
                "arms that passed their validity gates.")
    if finding["verdict"] == "not tested":
        return f"Not tested at this scale: {reason_text(finding['because'])}."
    return f"Undecided at this scale: the primary condition's interval is too wide ({power_text(primary)})."


def deviations_markdown(deviations: list[dict]) -> str:
    """The notebook's recorded deviations from protocol v2, or a line saying there are none. The exploration's own
    changes are in its record (docs/exploration.md)."""
    if not deviations:
        return ("No deviation from protocol v2 is recorded for this notebook. The exploration's changes of design are "
                "in its record, docs/exploration.md.")
    return "\n".join(deviation_line(d) for d in deviations)


def gates_table(findings: list[dict]):
    """Every compared arm and its gates, one row per arm (the findings that compare it) and one column per gate:
    ✓ or ✗, the worst run's value against the threshold (and its seed), and how many runs failed. As HTML, so that
    every row shows."""
    from IPython.display import HTML

    cells, used = {}, {}
    for f in findings:
        for g in f.get("gates", []):
            arm = arm_text(g["arm"])
            used.setdefault(arm, []).append(finding_name(f))
            number = "" if g["value"] is None else f" worst {g['value']:.3g}" + \
                ("" if g["threshold"] is None else f" vs {g['threshold']:.3g}") + \
                ("" if g.get("worst_seed") is None else f" (seed {g['worst_seed']})")
            runs = f"; {g['failed_runs']} of {g['runs']} runs failed" if not g["passed"] else f" ({g['runs']} runs)"
            why = f" {g['note']}" if not g["passed"] and g["note"] else ""
            cells.setdefault(arm, {})[g["gate"]] = ("✓" if g["passed"] else "✗") + number + why + runs
    if not cells:
        return HTML("<p>No arm was compared.</p>")
    table = pd.DataFrame.from_dict(cells, orient="index").fillna("")
    table.insert(0, "findings", [", ".join(dict.fromkeys(used[arm])) for arm in table.index])
    return HTML(table.rename_axis("arm").to_html())


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=LIB).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks", "config", "Snakefile",
                                "workflow"], capture_output=True, text=True, cwd=LIB.parent.parent).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "auto") -> dict:
    """What a run ran on, for run.json: Python, platform, CPU, GPUs, torch's build (its CUDA and cuDNN) and
    every installed package with its version."""
    device = resolve_device(device)
    cuda = torch.cuda.is_available()
    return dict(
        python=sys.version.split()[0], platform=platform.platform(), cpu=cpu_name(), threads=torch.get_num_threads(),
        gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        device=torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        torch_build=dict(version=torch.__version__, cuda=torch.version.cuda,
                         cudnn=torch.backends.cudnn.version() if cuda else None),
        packages=dict(sorted((d.metadata["Name"], d.version) for d in metadata.distributions() if d.metadata["Name"])))


def write_results(out_dir: str, results: pd.DataFrame, parameters: dict,
                  checkpoints: dict[str, str] | None = None) -> dict:
    """The sweep's half of a notebook: results.csv, run.json (parameters, git commit, the environment) and,
    for `checkpoints` (name -> path), checkpoints.csv with each checkpoint's own numbers from the JSON its
    rule writes beside it (supervised: loss and accuracy; self-supervised: its loss and the 1-NN probe)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results.csv", index=False)
    records = {name: json.loads(Path(path).with_suffix(".json").read_text()) for name, path in (checkpoints or {}).items()}
    rows = [dict(checkpoint=name, metric=metric, value=value) for name, record in records.items()
            for metric, value in record["val"].items()]
    if rows:
        pd.DataFrame(rows).to_csv(out / "checkpoints.csv", index=False)
        # Each checkpoint's training curve (its pretext loss per epoch), for the figure against its chance line.
        pd.DataFrame([dict(checkpoint=name, **{k: row[k] for k in ("step", "epoch", "metric", "value")})
                      for name, record in records.items() for row in record.get("history", [])
                      if row.get("split", "train") == "train"]).to_csv(out / "pretraining.csv", index=False)
    settings = {k: v for k, v in parameters.items() if k != "deviations"}  # a record of the config, not a setting
    run = dict(parameters=settings, git_commit=git_commit(), **environment(parameters.get("device", "auto")))
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


RESULT_FILES = ("results.csv", "run.json", "checkpoints.csv", "pretraining.csv")


def read_results(out_dir: str, results_dir: str | None = None) -> pd.DataFrame:
    """The other half's only input: results.csv in `out_dir`. With `results_dir` (a re-render from committed
    results), its result files are first copied into `out_dir` unless it is the same folder. Floats are read
    back exactly as written, so a re-render computes the very effects the sweep's run did."""
    out = Path(out_dir)
    if results_dir is not None and Path(results_dir).resolve() != out.resolve():
        out.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:
            if (Path(results_dir) / name).is_file():
                shutil.copyfile(Path(results_dir) / name, out / name)
    path = out / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: it is written by the notebook's sweep (run it with "
                                f"from_results=False, or `snakemake`), or set results_dir to a report folder that has one")
    return pd.read_csv(path)  # pandas 3 reads floats back exactly (round trip) by default


def write_findings(out_dir: str, findings: list[dict], from_results: bool = False, deviations: list[dict] = (),
                   phase: str = "confirmation") -> list[dict]:
    """findings.json, each finding with its phase (exploration or confirmation), the seeds of its results and
    the deviations from protocol v2 that name it; a re-render from results also notes its own commit in run.json,
    beside the one that trained. Returns the findings as written."""
    out = Path(out_dir)
    seeds = sorted(int(s) for s in pd.read_csv(out / "results.csv", usecols=["seed"]).seed.dropna().unique())
    findings = [{**f, "phase": phase, "seeds": seeds,
                 "deviations": [d for d in deviations if f["id"] in d["findings"]]} for f in findings]
    (out / "findings.json").write_text(json.dumps(findings, indent=2) + "\n")
    if from_results:
        run = json.loads((out / "run.json").read_text())
        run["rendered_from_results_at"] = git_commit()
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return findings
