"""The study's front page (reports/index.html) and the README's findings table, both generated
from the findings.json and benchmark files the workflow writes: no number here is typed."""
from __future__ import annotations

import csv
import fnmatch
import html
import json
import os
import subprocess
from pathlib import Path

import pandas as pd

VERDICT_COLOURS = {"reproduced": "#1a7f37", "not reproduced": "#cf222e", "not tested": "#6e7781",
                   "inconclusive": "#9a6700"}
README_START, README_END = "<!-- findings:start -->", "<!-- findings:end -->"
# Each paper's workflow steps (benchmark file names): its notebooks and the checkpoints they read.
PAPER_STEPS = {"He et al. (01-03)": ["01_*", "02_*", "03_*", "pretrain_upstream"],
               "Zoph et al. (04, 05)": ["04_*", "05_*", "pretrain_upstream", "selfsup_simclr"],
               "Newell & Deng, the overview (06-08)": ["06_*", "07_*", "08_*", "selfsup_*", "world_hard"]}


def load_findings(report_dirs) -> list[tuple[Path, dict, dict]]:
    """(report folder, finding, run.json) for every finding of every report folder, in folder order."""
    found = []
    for folder in sorted(Path(d) for d in report_dirs):
        run = json.loads((folder / "run.json").read_text())
        for finding in json.loads((folder / "findings.json").read_text()):
            found.append((folder, finding, run))
    return found


def finding_name(finding: dict) -> str:
    return finding["id"] + (f" ({finding['panel']})" if finding.get("panel") else "")


def interval_text(estimate: float, low: float, high: float, unit: str) -> str:
    """An effect with its 95% CI; "—" for one that was not measured (a finding whose runs a profile cut)."""
    if estimate != estimate:  # NaN
        return f"— (not measured) {unit}"
    return f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}] {unit}"


def effect_text(finding: dict) -> str:
    e = finding["effect"]
    return interval_text(e["estimate"], e["ci_low"], e["ci_high"], e["unit"])


def why_text(finding: dict, most: int = 2) -> str:
    """The verdict's one-line reason: why a finding is not tested (its true reason: a gate that failed, with its
    worst number; seeds that are no replicates; runs the profile did not make), why it is inconclusive (the seeds
    that would decide δ), or that an effect wholly inside (0, δ) is present but small."""
    if finding["verdict"] == "not tested":
        reason = finding.get("because") or {}
        if reason.get("kind") == "gate_failed":
            where = f"{reason['arm']['arm']}: " if reason.get("arm") else ""
            number = (f" (worst {reason['value']:.3g} against {reason['threshold']:.3g})"
                      if reason.get("value") is not None and reason.get("threshold") is not None else "")
            return f"{where}the {reason['gate']} gate failed{number}"
        if reason.get("kind") == "not_run":
            cost = f", about {reason['minutes']:.0f} minutes to run" if reason.get("minutes") else ""
            return f"not run: cut for the budget{cost}"
        if reason.get("kind") == "not_replicated":
            return "not replicated: one pre-training for every seed"
        return ""
    if finding["verdict"] == "inconclusive":
        power = next(c for c in finding["conditions"] if c["primary"]).get("power") or {}
        if power.get("seeds_needed"):
            return (f"about {power['seeds_needed']} seeds would decide δ at this spread "
                    f"({power['seeds_needed_upper'] or 'over 10,000'} at its upper bound)")
        return "no number of seeds would decide it at this spread"
    return ""


def phase_text(findings: list[dict]) -> str:
    """What the results are: "exploration (seeds 0-2, one pre-training per method)"."""
    seeds = sorted({s for f in findings for s in f.get("seeds", [])})
    consecutive = seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2
    seed_text = (f"seeds {seeds[0]}-{seeds[-1]}" if consecutive else "seeds " + ", ".join(map(str, seeds))) \
        if seeds else "no seeds"
    replicates = [f.get("pretraining_replicates") for f in findings if f.get("pretraining_replicates") is not None]
    pre = ("" if not replicates else ", one pre-training per method" if min(replicates) == 1
           else f", {min(replicates)} pre-trainings per method")
    return f"{findings[0].get('phase', 'exploration') if findings else 'exploration'} ({seed_text}{pre})"


def deviation_line(d: dict) -> str:
    """One recorded deviation as a Markdown list item (a report's Deviations section, the README table)."""
    before = "none committed" if d["earlier_reports"] == "none" else f"commit `{d['earlier_reports']}`"
    return f"- **{', '.join(d['findings'])}**: {d['change']}. Why: {d['reason']}. Reports before the change: {before}."


def benchmark_seconds(bench_dir: Path) -> dict[str, float]:
    """Wall seconds per rule job from Snakemake's benchmark: files."""
    seconds = {}
    for path in sorted(bench_dir.glob("*.tsv")):
        with path.open() as f:
            seconds[path.stem] = float(next(csv.DictReader(f, delimiter="\t"))["s"])
    return seconds


# What shapes a report's numbers: the training code, the study's verdict code, the config and its notebook.
SHAPING = ("lib/rethink/core", "lib/rethink/study", "config", "Snakefile")


def changed_since(commit: str, notebook: str) -> str:
    """The files that shape a report's numbers and changed between the commit that made it and HEAD ("" when none,
    or when git cannot tell: no repository, an unknown commit)."""
    root = Path(__file__).resolve().parents[3]
    paths = [*SHAPING, f"notebooks/{notebook}.py"]
    try:
        diff = subprocess.run(["git", "diff", "--name-only", commit.removesuffix("-dirty"), "HEAD", "--", *paths],
                              capture_output=True, text=True, cwd=root, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")


def write_index(report_dirs, out_dir: str) -> None:
    out = Path(out_dir)
    found = load_findings(report_dirs)
    runs = {folder: run for folder, _, run in found}  # one git diff per report, not per finding
    changed = {folder: changed_since(run["git_commit"], folder.name) for folder, run in runs.items()}
    rows = []
    for folder, f, run in found:
        link = os.path.relpath(folder / f"{folder.name}.html", out)
        figure = os.path.relpath(folder / f["figure"], out) if f.get("figure") else None
        colour = VERDICT_COLOURS[f["verdict"]]
        rows.append(
            f"<tr><td><b>{html.escape(finding_name(f))}</b></td><td>{html.escape(f['claim'])}<br><small>paper: "
            f"{html.escape(f['paper'])}</small><br><small>criterion: {html.escape(f['criterion']['text'])}</small></td>"
            f"<td>{html.escape(effect_text(f))}<br><small>{f['n_seeds']} seeds"
            + (f"; paper: {html.escape(f['paper_effect'])}" if f.get("paper_effect") else "") + "</small></td>"
            f"<td><span style='background:{colour};color:white;padding:2px 6px;border-radius:4px;white-space:nowrap'>"
            f"{html.escape(f['verdict'])}</span><br><small>{html.escape(why_text(f))}</small>"
            + (f"<br><small>{len(f['deviations'])} deviation(s) from protocol v2</small>" if f.get("deviations") else "")
            + f"<br><small>{html.escape(phase_text([f]))}</small></td>"
            f"<td>{f'<a href={figure!r}><img src={figure!r} width=420></a>' if figure else ''}<br>"
            f"<a href={link!r}>report</a> · commit <code>{html.escape(run['git_commit'][:12])}</code>"
            f"{'<br><small><b>made by older code or config:</b> ' + html.escape(changed[folder]) + '</small>' if changed.get(folder) else ''}"
            "</td></tr>")
    profiles = sorted({f["profile"] for _, f, _ in found})
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>rethink: findings</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td{{vertical-align:top;padding:8px;
border-bottom:1px solid #ddd}}th{{text-align:left}}</style></head><body>
<h1>rethink: pre-training vs self-training vs training from scratch</h1>
<p>Profile: {html.escape(', '.join(profiles))}. Every verdict below is computed from the runs against the criterion
pre-registered in <code>config/study.yaml</code> (protocol v2: <code>docs/protocol.md</code>); effects are means over
seeds with 95% confidence intervals, and the verdict is the primary condition's. A condition counts only when every
arm it compares passed its validity gates (learned, converged, pre-training worked, self-training applied, distinct):
<i>not tested</i> gives its true reason, a gate that failed with its worst number, seeds that are not independent
replicates, or runs the profile did not make. These results: {html.escape(phase_text([f for _, f, _ in found]))}.
The exploration's changes of design are in its record, <code>docs/exploration.md</code>.</p>
<table><tr><th>ID</th><th>finding</th><th>effect (95% CI)</th><th>verdict</th><th>report</th></tr>
{''.join(rows)}</table></body></html>
"""
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page)
    (out / "findings.md").write_text(findings_markdown(found, benchmark_seconds(out / "benchmarks"), out))


def findings_markdown(found, seconds: dict[str, float], out: Path) -> str:
    lines = ["| ID | finding | effect (95% CI) | seeds | verdict | report |", "|---|---|---|---|---|---|"]
    for folder, f, _ in found:
        link = os.path.relpath(folder / f"{folder.name}.html", out.parent)
        why = why_text(f, most=1)
        lines.append(f"| {finding_name(f)} | {f['claim']} | {effect_text(f)} | {f['n_seeds']} | **{f['verdict']}**"
                     f"{f' ({why})' if why else ''} | "
                     f"[{folder.name}]({link}) |")
    deviations = {}  # one entry per deviation, with every finding that lists it
    for _, f, _ in found:
        for d in f.get("deviations", []):
            deviations.setdefault((d["change"], d["earlier_reports"]), d)
    lines += ["", f"These results: {phase_text([f for _, f, _ in found])}. The exploration's changes of design are "
                  f"recorded in [docs/exploration.md](docs/exploration.md)."]
    lines += ["", "Deviations from protocol v2, shown in each report:", ""] + \
        ([deviation_line(d) for d in deviations.values()] or ["- none."])
    profiles = ", ".join(sorted({f["profile"] for _, f, _ in found}))
    lines += ["", f"Profile `{profiles}`. Measured wall time of each workflow step on the machine that made "
                  "these reports (Snakemake `benchmark:` files under `reports/benchmarks/`):", "",
              "| step | minutes |", "|---|---|"]
    lines += [f"| {name} | {s / 60:.1f} |" for name, s in seconds.items()]
    if seconds:
        lines.append(f"| **total** | **{sum(seconds.values()) / 60:.1f}** |")
        lines += ["", "Each paper's notebooks with the checkpoints they need (a shared checkpoint counts in each; the "
                      "world, which all share, is not counted). The budget is 35 minutes each (one paper may take up "
                      "to 45 if the whole stays within 120), 120 for the whole:", "",
                  "| paper | steps | minutes |", "|---|---|---|"]
        for paper, patterns in PAPER_STEPS.items():
            steps = [name for name in seconds if any(fnmatch.fnmatch(name, p) for p in patterns)]
            lines.append(f"| {paper} | {', '.join(steps)} | {sum(seconds[n] for n in steps) / 60:.1f} |")
    # A notebook whose runs were read back from the cache ran fast; what its runs cost is in results.csv.
    lines += ["", "Training time of each notebook's runs, measured when each run trained (a rerun that reads "
                  "finished runs back from `cache/` costs far less; a run that two notebooks share, such as HE-1's "
                  "full-data runs in HE-3, trained once but is listed under both):", "", "| notebook | runs | minutes |",
              "|---|---|---|"]
    for folder in sorted({folder for folder, _, _ in found}):
        results = pd.read_csv(folder / "results.csv")
        run_seconds = results[results.metric == "seconds"].value
        lines.append(f"| {folder.name} | {len(run_seconds)} | {run_seconds.sum() / 60:.1f} |")
    return "\n".join(lines) + "\n"


SMOKE_LINE = "The smoke profile's steps (`make smoke`, the DAG that `make test` runs)"


def splice_readme(findings_md: str, readme: str, smoke_benchmarks: str | None = None) -> None:
    """Replace the block between the findings markers of README.md with the generated table, and
    add the smoke profile's measured total when its benchmark files exist (without them, the line the README
    has already stays: `make render` runs no smoke profile)."""
    text = Path(readme).read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the markers {README_START} ... {README_END}")
    head, rest = text.split(README_START, 1)
    old, tail = rest.split(README_END, 1)
    table = Path(findings_md).read_text()
    smoke = benchmark_seconds(Path(smoke_benchmarks)) if smoke_benchmarks else {}
    if smoke:
        table += (f"\n{SMOKE_LINE} took {sum(smoke.values()) / 60:.1f} minutes in all on the same machine, "
                  f"Snakemake's own start-up not counted.\n")
    else:
        table += "".join(f"\n{line}\n" for line in old.splitlines() if line.startswith(SMOKE_LINE))
    Path(readme).write_text(f"{head}{README_START}\n{table}{README_END}{tail}")


PAPER_OF = {"HE": "He et al. 2019", "ZO": "Zoph et al. 2020", "ND": "Newell & Deng 2020", "BL": "the overview article"}


def exploration_markdown(record: dict) -> str:
    """docs/exploration.md from config/exploration.yaml: the exploration's changes of design, each once, grouped by
    the paper of its first finding, and the findings it cut for its budget."""
    lines = ["# The exploration's record", "",
             "<!-- Written by `python -m rethink exploration` from config/exploration.yaml; edit that file. -->", "",
             "The reports first committed were an **exploration**: seeds 0-2, one pre-training checkpoint per method "
             "shared by every seed, and designs calibrated with one-seed probes on the validation images the verdicts "
             "read. Each change below was made after the results it corrects existed; most were needed to get arms "
             "that converge, and each is recorded with why and the commit of the reports before it. The confirmation "
             "(docs/protocol.md) is judged under protocol v2, fixed before its runs, on fresh seeds; its own "
             "deviations are listed in its reports and the README.", ""]
    for prefix, paper in PAPER_OF.items():
        entries = [d for d in record["deviations"] if d["findings"][0].startswith(prefix)]
        if entries:
            lines += [f"## {paper}", ""] + [deviation_line(d) for d in entries] + [""]
    lines += ["## Cut for the budget", "",
              "The exploration's default profile did not run these; a report of the exploration reads them as "
              "`not run`, with this cost on 2 cores.", "", "| finding | minutes | how the cost is known |",
              "|---|---|---|"]
    lines += [f"| {finding} | {cut['minutes']:g} | {cut['how']} |" for finding, cut in record["cuts"].items()]
    return "\n".join(lines) + "\n"
