"""What a notebook shows and writes: tables set next to the papers' numbers, the verdicts, gates and
deviations in words, and its files (results.csv, checkpoints.csv and run.json from the sweep; findings.json
from the verdicts)."""
from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from ..core.train import resolve_device
from ..report.figures import mean_ci_text
from ..report.index import VERDICT_COLOURS, deviation_line, effect_text, finding_name, interval_text
from .verdicts import arm_text, final_metric

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


def checkpoint_table(out_dir: str, decimals: int | None = None):
    """Each checkpoint's own final numbers on its upstream validation set, from the report's checkpoints.csv
    (rows: checkpoints, columns: metrics); empty where the results were saved without it."""
    path = Path(out_dir) / "checkpoints.csv"
    if not path.is_file():  # results saved before checkpoints.csv existed
        print(f"(no {path}: the checkpoints' own numbers were not saved with these results)")
        return pd.DataFrame(index=pd.Index([], name="checkpoint"))
    rows = pd.read_csv(path)
    table = rows.pivot(index="checkpoint", columns="metric", values="value").loc[rows.checkpoint.unique()]
    return table if decimals is None else table.round(decimals)


def verdict_badge(verdict: str) -> str:
    """A verdict in its own colour, never wrapped (inline HTML: the reports render Markdown with it)."""
    return f'<span style="color:{VERDICT_COLOURS[verdict]};white-space:nowrap"><b>{verdict}</b></span>'


def gates_summary(finding: dict) -> str:
    """A finding's gates in a few words: all passed, or which arms failed which gate."""
    failed = [g for g in finding.get("gates", []) if not g["passed"]]
    if not failed:
        return f"all {len(finding.get('gates', []))} passed"
    named = list(dict.fromkeys(f"{arm_text(g['arm'])}: {g['gate']}" for g in failed))
    return f"{len(failed)} failed ({'; '.join(named[:2])}{f'; {len(named) - 2} more' if len(named) > 2 else ''})"


def summary_markdown(findings: list[dict], deviations: list[dict] = ()) -> str:
    """The report's opening table: per finding its claim, computed verdict, our primary effect beside the paper's,
    its gates, its recorded deviations and a link to its key figure."""
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| finding | claim | verdict | ours | paper | gates | deviations | figure |",
             "|---|---|---|---|---|---|---|---|"]
    for f in findings:
        changes = [d["change"] for d in deviations if f["id"] in d["findings"]]  # the latest, and how many before it
        changes = changes[-1:] + [f"{len(changes) - 1} earlier (below)"] if len(changes) > 1 else changes
        figure = f"[{f['figure']}]({f['figure']})" if f.get("figure") else "—"
        lines.append("| " + " | ".join(cell(x) for x in (
            f"**{finding_name(f)}**", f["claim"], verdict_badge(f["verdict"]),
            f"{effect_text(f)} ({f['criterion']['primary']}, {f['n_seeds']} seeds)",
            f.get("paper_effect") or f["paper"], gates_summary(f), "; ".join(changes) or "none", figure)) + " |")
    return "\n".join(lines)


def parameters_table(parameters: dict) -> pd.DataFrame:
    """Every parameter the notebook ran with (config/study.yaml, papermill and the parameters cell), one row each."""
    return pd.DataFrame({"value": {k: str(v) for k, v in parameters.items()}}).rename_axis("parameter")


def verdict_markdown(findings: list[dict]) -> str:
    """A paragraph per finding, written from the computed verdict, its conditions, their gates and power."""
    blocks = []
    for f in findings:
        lines = [f"**{finding_name(f)}: {f['verdict']}** at this scale (profile `{f['profile']}`, {f['n_seeds']} "
                 f"seeds). Criterion: {f['criterion']['text']}.", ""]
        for c in f["conditions"]:
            line = (f"- {c['effect']}: {interval_text(c['estimate'], c['ci_low'], c['ci_high'], c['unit'])}, "
                    f"needs {c['op']} {c['value']:g}: **{c['status']}**")
            if c.get("not_tested_because"):
                line += " (" + "; ".join(c["not_tested_because"][:3]) + \
                        (f"; {len(c['not_tested_because']) - 3} more" if len(c["not_tested_because"]) > 3 else "") + ")"
            elif c["status"] == "undecided":
                line += f" ({power_text(c)})"
            lines.append(line)
        lines += ["", verdict_sentence(f), "", f"Paper: {f['paper']}"]
        if f.get("paper_effect"):
            lines += ["", f"The paper's effect against ours: {f['paper_effect']} (paper); {effect_text(f)} "
                          f"(ours, {f['criterion']['primary']})."]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def power_text(condition: dict) -> str:
    """An undecided condition's minimum detectable effect and the seeds that would decide it."""
    if condition.get("mde") is None:
        return "one seed: no spread to plan with"
    seeds = condition.get("seeds_needed")
    decide = (f"about {seeds} seeds would decide it at this spread" if seeds
              else "no number of seeds would decide it at this spread: the estimate sits on the margin")
    return f"minimum detectable effect {condition['mde']:.2f} {condition['unit']} at {condition['n']} seeds; {decide}"


def verdict_sentence(finding: dict) -> str:
    """Whether the finding held at this scale, in words, from the computed verdict."""
    named = lambda status: ", ".join(c["effect"] for c in finding["conditions"] if c["status"] == status)
    if finding["verdict"] == "reproduced":
        return "The finding held at this scale: every condition's whole confidence interval meets the criterion, on " \
               "arms that passed their validity gates."
    if finding["verdict"] == "not reproduced":
        return f"The finding did not hold at this scale: the confidence interval of {named('failed')} lies " \
               f"entirely on the wrong side of the criterion, on arms that passed their validity gates."
    if finding["verdict"] == "not tested":
        return f"Not tested at this scale: the arms of {named('not tested')} failed a validity gate, so their " \
               f"numbers say nothing about the paper."
    undecided = [c for c in finding["conditions"] if c["status"] == "undecided"]
    more = [c for c in undecided if c.get("seeds_needed")]
    tail = (f"more seeds would tell ({'; '.join(c['effect'] + ': ' + power_text(c) for c in more)})." if more
            else "at this spread no number of seeds would tell.")
    return f"Undecided at this scale: the confidence interval of {named('undecided')} straddles the criterion; {tail}"


def deviations_markdown(deviations: list[dict]) -> str:
    """The notebook's recorded deviations from its pre-registration, or a line saying there are none."""
    if not deviations:
        return "No deviation from the pre-registered design is recorded for this notebook."
    return "\n".join(deviation_line(d) for d in deviations)


def gates_table(findings: list[dict]):
    """Every compared arm and its gates, one row per arm (the findings that compare it) and one column per
    gate: ✓ or ✗, a failing run's value (or the first run's) and the threshold, and how many runs failed. As
    HTML, so that every row shows."""
    from IPython.display import HTML

    cells, used = {}, {}
    for f in findings:
        for g in f.get("gates", []):
            arm = arm_text(g["arm"])
            used.setdefault(arm, []).append(finding_name(f))
            number = "" if g["value"] is None else f" {g['value']:.3g}" + \
                ("" if g["threshold"] is None else f" vs {g['threshold']:.3g}")
            runs = "" if g["passed"] else f" ({g['failed_runs']} of {g['runs']} runs)"
            why = f" {g['note']}" if not g["passed"] and g["note"] else number
            cells.setdefault(arm, {})[g["gate"]] = ("✓" if g["passed"] else "✗") + why + runs
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
    run = dict(parameters=parameters, git_commit=git_commit(), **environment(parameters.get("device", "auto")))
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


def write_findings(out_dir: str, findings: list[dict], from_results: bool = False,
                   deviations: list[dict] = ()) -> None:
    """findings.json, each finding with the deviations that name it; a re-render from results also notes its
    own commit in run.json, beside the one that trained."""
    out = Path(out_dir)
    findings = [{**f, "deviations": [d for d in deviations if f["id"] in d["findings"]]} for f in findings]
    (out / "findings.json").write_text(json.dumps(findings, indent=2) + "\n")
    if from_results:
        run = json.loads((out / "run.json").read_text())
        run["rendered_from_results_at"] = git_commit()
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
