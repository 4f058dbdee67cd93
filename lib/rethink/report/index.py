"""The study's front page (reports/index.html) and the README's findings table, both generated
from the findings.json and benchmark files the workflow writes: no number here is typed."""
from __future__ import annotations

import csv
import fnmatch
import html
import json
import os
from pathlib import Path

import pandas as pd

from .. import config
from ..study.provenance import current_hash
from .words import (VERDICT_COLOURS, VERDICT_MEANINGS, deviation_line, effect_text, finding_name,
                    phase_of, phase_text, phases, tally, why_text)

README_START, README_END = "<!-- findings:start -->", "<!-- findings:end -->"
PAPERS = {"he": "He et al. (01-03)", "zo": "Zoph et al. (04, 05)", "nd": "Newell & Deng, the overview (06-08)"}


def part_steps(profile: dict, name: str) -> list[str]:
    """The workflow steps (benchmark file names, fnmatch patterns) of a part or a session of one (make study PART=):
    its notebooks' jobs, the world files it reads and the checkpoints of its seeds. A session counts its own
    notebook jobs; its part, every job, the report-writing ones included."""
    part, k = config.session_of(profile, name)
    notebooks = config.part_notebooks(profile, part)
    files = {file for nb in notebooks for file in config.notebook_checkpoints(
        profile, nb, config.session_seeds(profile, nb, k) if k else None)}
    rules = [config.checkpoint_step(f.removesuffix(".pt")) for f in files]
    world = ["world"] + ["world_hard"] * any("_hard-" in f for f in files)
    jobs = [f"{nb}-session{k}" for nb in notebooks] if k else [f"{nb}*" for nb in notebooks]
    seedless = {r.rsplit("-seed", 1)[0] for r in rules}  # the exploration's: one checkpoint per name
    return (world if k in (None, 1) else []) + jobs + sorted(rules) + sorted(seedless) * (k is None)


def part_minutes(profile: dict, seconds: dict[str, float]) -> list[str]:
    """The README's table of each part's (and each session's) minutes, from the benchmark files there are, and a
    last row with every step those rows count, each once (the exploration's steps of a part whose sessions have
    not all run count nowhere: the table is the confirmation's)."""
    rows = part_steps_counted(profile, seconds)
    lines = [f"| {label} | {sum(seconds[n] for n in steps) / 60:.1f} |" if steps else f"| {label} | not run yet |"
             for label, steps in rows]
    every = {n for _, steps in rows for n in steps}
    return lines + [f"| **every step once** | **{sum(seconds[n] for n in every) / 60:.1f}** |"]


def part_steps_counted(profile: dict, seconds: dict[str, float]) -> list[tuple[str, list[str]]]:
    """(label, the benchmark files counted) for each part and session of one: none where it has not run."""
    rows = []
    for name in config.part_names(profile):
        part, k = config.session_of(profile, name)
        steps = [n for n in seconds if any(fnmatch.fnmatch(n, p) for p in part_steps(profile, name))]
        per_seed = {n.rsplit("-seed", 1)[0] for n in steps if "-seed" in n}
        steps = [n for n in steps if n not in per_seed]  # the exploration's one checkpoint, once per seed replaced
        if k and not any(n.endswith(f"-session{k}") for n in steps):  # its world files alone are not a session
            steps = []
        split = config.sessions(profile, part)
        ran = lambda j: any(f"{nb}-session{j}" in seconds for nb in config.part_notebooks(profile, part))
        if not k and split > 1 and not all(map(ran, range(1, split + 1))):
            steps = []  # a split part counts once every session of it ran
        rows.append((f"{PAPERS[part]}, PART={name}" + (f" (session {k} of {split})" if k else ""), steps))
    return rows


def load_findings(report_dirs) -> list[tuple[Path, dict, dict]]:
    """(report folder, finding, run.json) for every finding of every report folder, in folder order."""
    found = []
    for folder in sorted(Path(d) for d in report_dirs):
        run = json.loads((folder / "run.json").read_text())
        for finding in json.loads((folder / "findings.json").read_text()):
            found.append((folder, finding, run))
    return found


def benchmark_seconds(bench_dir: Path) -> dict[str, float]:
    """Wall seconds per rule job from Snakemake's benchmark: files."""
    seconds = {}
    for path in sorted(bench_dir.glob("*.tsv")):
        with path.open() as f:
            seconds[path.stem] = float(next(csv.DictReader(f, delimiter="\t"))["s"])
    return seconds


def tally_lines(findings: list[dict]) -> list[str]:
    """The verdicts counted, one line per phase where the reports are of several (between the confirmation's
    parts): "confirmation (seeds 100-105, ...): 3 reproduced · ..."."""
    groups = phases(findings)
    if len(groups) == 1:
        return [f"{tally(findings)} — {phase_text(findings)}."]
    return [f"{phase_text(group)}: {tally(group)}." for group in groups.values()]


def code_line(found, code=lambda h: f"`{h}`") -> str:
    """Which training code made the reports: the core/ hash each run.json records (study.provenance.code_hash),
    one line saying that every report shares it, or which reports have which (`code` marks up a hash)."""
    by_hash: dict[str, list[str]] = {}
    for folder, run in {folder: run for folder, _, run in found}.items():
        by_hash.setdefault(run.get("core_hash"), []).append(folder.name[:2])
    name = lambda h: code(h) if h else "none recorded"
    if len(by_hash) == 1:
        (only, _), = by_hash.items()
        return (f"Training code: every report was made by the same core/, hash {name(only)}." if only else
                "Training code: no report records its core/ hash (these reports predate it).")
    return ("Training code: the reports were made by different core/ code (its hash: the reports) — " +
            "; ".join(f"{name(h)}: {', '.join(names)}" for h, names in by_hash.items()) + ".")


def stale_reason(run: dict, profile: str, notebook: str) -> str:
    """Why a report's results are not what the checkout would make now ("" when they are): its run.json's
    results_hash (study.provenance: core/, the settings that shape runs, the notebook's sweep half) against the
    one the checkout gives. A caption edit or a re-render leaves the hash alone; a change that trains differently
    does not."""
    recorded = run.get("results_hash")
    if not recorded:
        return (f"no results hash recorded (made at {run.get('git_commit', 'an unknown commit')[:7]}, before "
                f"reports recorded what shaped them): rerun it to make it current")
    now = current_hash(profile, notebook)
    if now is None:
        return f"profile {profile!r} no longer has notebook {notebook}"
    return "" if now == recorded else (f"the checkout would train differently (results hash {recorded} at "
                                       f"{run.get('git_commit', '?')[:7]}, {now} now)")


STYLE = """body{font-family:sans-serif;max-width:1180px;margin:2em auto;line-height:1.4}td{vertical-align:top;
padding:8px;border-bottom:1px solid #ddd}th{text-align:left}.pill{color:white;padding:2px 7px;border-radius:4px;
white-space:nowrap}.tally{font-size:1.15em}dt{font-weight:bold;float:left;clear:left;width:9em}dd{margin-left:9.5em}
small{color:#444}img{border:1px solid #eee}td:first-child{white-space:nowrap}"""


def pill(verdict: str) -> str:
    return f"<span class='pill' style='background:{VERDICT_COLOURS[verdict]}'>{html.escape(verdict)}</span>"


def deviations_of(found) -> list[dict]:
    """Every deviation from protocol v2 the findings list, once each, naming every finding it applies to (one
    change recorded for several notebooks is one deviation)."""
    unique = {}
    for _, f, _ in found:
        for d in f.get("deviations", []):
            kept = unique.setdefault((d["change"], d["earlier_reports"]), {**d, "findings": []})
            kept["findings"] += [x for x in d["findings"] if x not in kept["findings"]]
    return list(unique.values())


def index_row(folder: Path, f: dict, run: dict, out: Path, changed: str, mixed: bool = False) -> str:
    """One finding on the front page: its claim, our effect beside the paper's, the verdict with its reason, its
    effect plot (click for full size) and a link to its report."""
    link = os.path.relpath(folder / f"{folder.name}.html", out)
    plot = folder / f"effect_{f['id']}.png"
    figure = os.path.relpath(plot, out) if plot.is_file() else None
    primary = next(c for c in f["conditions"] if c["primary"])
    why = why_text(f)
    stale = f"<br><small><b>not current:</b> {html.escape(changed)}</small>" if changed else ""
    return (f"<tr><td><b>{html.escape(finding_name(f))}</b></td>"
            f"<td>{html.escape(f['claim'])}<br><small><b>ours:</b> {html.escape(effect_text(f))} "
            f"({html.escape(primary['label'])}, {f['n_seeds']} seeds"
            f"{', ' + html.escape(phase_of(f)) if mixed else ''})<br><b>paper:</b> "
            f"{html.escape(f.get('paper_effect') or f['paper'])}</small></td>"
            f"<td>{pill(f['verdict'])}<br><small>{html.escape(why)}</small>"
            + (f"<br><small>{len(f['deviations'])} deviation(s) from protocol v2</small>" if f.get("deviations") else "")
            + "</td><td>"
            + (f"<a href={figure!r}><img src={figure!r} width=380 alt='the effect of {f['id']}'></a><br>" if figure else "")
            + f"<a href={link!r}>report</a> · commit <code>{html.escape(run['git_commit'][:12])}</code>{stale}"
            "</td></tr>")


DOCS = Path(__file__).resolve().parents[3] / "docs"


def write_index(report_dirs, out_dir: str, docs: str | Path = DOCS) -> None:
    """index.html (the front page), findings.md (the README's block) and timings.md in `out_dir`, from the
    findings.json of `report_dirs`; the pages link to the protocol and the exploration's record under `docs`."""
    out = Path(out_dir)
    found = load_findings(report_dirs)
    runs = {folder: run for folder, _, run in found}  # one git diff per report, not per finding
    changed = {folder: stale_reason(run, run.get("parameters", {}).get("profile", "default"), folder.name)
               for folder, run in runs.items()}
    findings = [f for _, f, _ in found]
    mixed = len(phases(findings)) > 1
    rows = "".join(index_row(folder, f, run, out, changed[folder], mixed) for folder, f, run in found)
    meanings = "".join(f"<dt>{pill(v)}</dt><dd>{html.escape(m)}</dd>" for v, m in VERDICT_MEANINGS.items())
    deviations = deviations_of(found)
    exploration = os.path.relpath(Path(docs) / "exploration.md", out)
    protocol = os.path.relpath(Path(docs) / "protocol.md", out)
    code = code_line(found, code=lambda h: f"<code>{html.escape(h)}</code>")
    tallies = "".join(f"<p class='tally'><b>{html.escape(line)}</b></p>" for line in tally_lines(findings))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>rethink: findings</title>
<style>{STYLE}</style></head><body>
<h1>rethink: pre-training vs self-training vs training from scratch</h1>
{tallies}
<p>These results: <b>{html.escape(phase_text(findings))}</b>, profile {html.escape(', '.join(sorted({f['profile'] for f in findings})))}.
{code}
Each verdict is computed from the runs against the criterion pre-registered in <code>config/protocol.yaml</code> under
<a href="{protocol}">protocol v2</a>: effects are means over seeds with 95% confidence intervals, and the verdict is
the primary condition's.</p>
<dl>{meanings}</dl>
<p style="clear:left">Deviations from protocol v2: {len(deviations) or 'none'}{' (listed in each report)' if deviations else ''}.
The exploration's changes of design: <a href="{exploration}">its record</a>.</p>
<table><tr><th>ID</th><th>finding: ours and the paper's</th><th>verdict</th><th>effect and report</th></tr>
{rows}</table></body></html>
"""
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page)
    seconds = benchmark_seconds(out / "benchmarks")
    (out / "findings.md").write_text(findings_markdown(found, seconds, out))
    (out / "timings.md").write_text(timings_markdown(found, seconds))


def findings_markdown(found, seconds: dict[str, float], out: Path) -> str:
    """The README's block: the tally, the findings table, the verdict words, what the results are, the deviations
    from protocol v2, and each part's minutes."""
    findings = [f for _, f, _ in found]
    mixed = len(phases(findings)) > 1  # between the confirmation's parts: each row says which its results are
    lines = [*[text for line in tally_lines(findings) for text in (f"**{line}**", "")], code_line(found), "",
             "| ID | finding | ours (95% CI) | paper | verdict | report |", "|---|---|---|---|---|---|"]
    for folder, f, _ in found:
        link = os.path.relpath(folder / f"{folder.name}.html", out.parent)
        why = why_text(f, most=1)
        phase = f", {phase_of(f)}" if mixed else ""
        lines.append(f"| {finding_name(f)} | {f['claim']} | {effect_text(f)} ({f['n_seeds']} seeds{phase}) | "
                     f"{f.get('paper_effect') or f['paper']} | **{f['verdict']}**{f' ({why})' if why else ''} | "
                     f"[{folder.name}]({link}) |")
    lines += [""] + [f"- **{verdict}**: {meaning}." for verdict, meaning in VERDICT_MEANINGS.items()]
    deviations = deviations_of(found)
    lines += ["", "Deviations from protocol v2:" + (" none." if not deviations else ""),
              *(["", *map(deviation_line, deviations), ""] if deviations else []),
              "The exploration's changes of design are recorded in [docs/exploration.md](docs/exploration.md); its "
              "findings and runs, as it committed them, are in [docs/exploration-results/](docs/exploration-results/)."]
    if seconds:
        lines += ["", "Minutes on the machine that made these reports (Snakemake's benchmark files under "
                      "`reports/benchmarks/`; a checkpoint a part needs counts in it):", "",
                  "| part | minutes |", "|---|---|"]
        profile = config.load(findings[0]["profile"] if findings else "default")
        lines += part_minutes(profile, seconds)
    return "\n".join(lines) + "\n"


def timings_markdown(found, seconds: dict[str, float]) -> str:
    """reports/timings.md: each workflow step's minutes, and each notebook's training time as its runs measured it."""
    lines = ["# Where the time goes", "", "Each workflow step (Snakemake's benchmark files):", "",
             "| step | minutes |", "|---|---|"] + [f"| {name} | {s / 60:.1f} |" for name, s in seconds.items()]
    # A notebook whose runs were read back from the cache ran fast; what its runs cost is in results.csv.
    lines += ["", "Training time of each notebook's runs, measured when each run trained (a rerun that reads "
                  "finished runs back from `cache/` costs far less; a run two notebooks share is listed under both):",
              "", "| notebook | runs | minutes |", "|---|---|---|"]
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
    text = f"{head}{README_START}\n{table}{README_END}{tail}"
    if LAPTOP_START in text and LAPTOP_END in text:
        head, rest = text.split(LAPTOP_START, 1)
        text = f"{head}{LAPTOP_START}\n{laptop_markdown(Path(findings_md).parent)}{LAPTOP_END}{rest.split(LAPTOP_END, 1)[1]}"
    Path(readme).write_text(text)


LAPTOP_START, LAPTOP_END = "<!-- laptop:start -->", "<!-- laptop:end -->"
# The classification notebooks a real dataset split by class runs (README, "Your own data on a laptop").
LAPTOP_NOTEBOOKS = ("04_zo1_zo2_augmentation_data", "05_zo3_zo5_self_training", "08_bl2_iterated_self_training")


def laptop_markdown(reports: Path) -> str:
    """What the classification notebooks cost at the default profile's sizes, from the committed reports: each
    run's own seconds (results.csv) and the notebook's minutes (its benchmark file), on the machine that made them."""
    seconds = benchmark_seconds(reports / "benchmarks")
    lines = ["| notebook | runs | seconds per run: median (fastest-slowest) | notebook minutes |", "|---|---|---|---|"]
    for notebook in LAPTOP_NOTEBOOKS:
        results = pd.read_csv(reports / notebook / "results.csv")
        run = results[results.metric == "seconds"].value
        # The sessions' minutes count with the report they made: a report of the exploration (no phase recorded)
        # beside a confirmation's first sessions counts its own notebook job only.
        run_json = reports / notebook / "run.json"
        made = json.loads(run_json.read_text())["parameters"] if run_json.is_file() else {}
        confirmed = made.get("phase") == "confirmation"
        steps = [s for name, s in seconds.items()
                 if name == notebook or (confirmed and name.startswith(f"{notebook}-session"))]
        minutes = f"{sum(steps) / 60:.1f}" if steps else "—"  # a split part: its sessions and its report
        lines.append(f"| {notebook} | {len(run)} | {run.median():.0f} ({run.min():.0f}-{run.max():.0f}) | {minutes} |")
    return "\n".join(lines) + "\n"


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
             "deviations are listed in its reports and the README.", "",
             "The exploration's findings and runs are kept as it committed them, one folder per notebook in "
             "docs/exploration-results/ (findings.json: verdicts, conditions, effects, gates; results.csv: every "
             "run's numbers); each report of the confirmation sets them beside its own, condition by condition.", ""]
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
