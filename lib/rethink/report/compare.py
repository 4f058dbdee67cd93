"""The exploration beside the confirmation: each report of the confirmation shows, per finding, the exploration's
verdict and effects (kept in docs/exploration-results/<notebook>/, copied from its committed reports before the
confirmation replaced them) next to its own, condition by condition, matched by the condition's name."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import config
from .words import interval_text, phase_of, phase_text

ARCHIVE = config.EXPLORATION_RESULTS  # <notebook>/findings.json, results.csv and run.json, as committed


def exploration_findings(notebook: str, archive: Path = ARCHIVE) -> list[dict]:
    """The exploration's findings of `notebook` (empty where the archive has none, e.g. a notebook of one's own)."""
    path = Path(archive) / notebook / "findings.json"
    return json.loads(path.read_text()) if path.exists() else []


def exploration_results(notebook: str, archive: Path = ARCHIVE) -> pd.DataFrame:
    """The exploration's results.csv of `notebook`, every run's rows as it recorded them."""
    path = Path(archive) / notebook / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the exploration's results of {notebook} are not in the archive "
                                f"(docs/exploration-results/ holds them for the study's eight notebooks)")
    return pd.read_csv(path)


def _cell(c: dict | None) -> str:
    if c is None:
        return "—"
    seeds = f"{c['n']} seed{'s' if c['n'] != 1 else ''}"
    status = c.get("status") or ("held" if c.get("held") else "did not hold")
    return f"{interval_text(c['estimate'], c['ci_low'], c['ci_high'], '').strip()} ({seeds}): {status}"


def comparison_rows(findings: list[dict], explored: list[dict]) -> pd.DataFrame:
    """One row per finding (its verdict) and per condition (its effect, interval, seeds and status), the
    exploration's beside the confirmation's. A condition both have under one name but with other labels (HE-1's
    longest schedule: 6x then, 8x now) shows both labels; one that only one of them has reads '—' on the other."""
    rows = []
    for f in findings:
        old = next((e for e in explored if e["id"] == f["id"] and e.get("panel") == f.get("panel")), None)
        name = f["id"] + (f" ({f['panel']})" if f.get("panel") else "")
        rows.append(dict(finding=name, condition="verdict", exploration=old["verdict"] if old else "—",
                         confirmation=f["verdict"]))
        before = {c["name"]: c for c in (old or {}).get("conditions", [])}
        now = {c["name"]: c for c in f["conditions"]}
        for conditions, source in ((before, old or {}), (now, f)):  # ZO-1's premise, judged like a condition
            if source.get("precondition"):
                conditions["precondition"] = source["precondition"]
        for key in dict.fromkeys([*now, *before]):
            c_new, c_old = now.get(key), before.get(key)
            labels = list(dict.fromkeys(c["label"] for c in (c_old, c_new) if c))
            rows.append(dict(finding=name, condition=" / ".join(labels) if len(labels) > 1 else labels[0],
                             exploration=_cell(c_old), confirmation=_cell(c_new)))
    return pd.DataFrame(rows, columns=["finding", "condition", "exploration", "confirmation"])


def comparison_markdown(findings: list[dict], explored: list[dict]) -> str:
    """The comparison as a Markdown table with a heading that says what each column's results are."""
    if not explored or all(phase_of(f) == "exploration" for f in findings):
        return ""
    table = comparison_rows(findings, explored)
    seeds = lambda fs: phase_text(fs).split(" ", 1)[1]  # "(seeds 0-2, one pre-training per method)"
    cell = lambda text: str(text).replace("|", "\\|")
    lines = ["### The exploration beside the confirmation", "",
             f"The same conditions in the exploration {seeds(explored)} and in this confirmation "
             f"{seeds(findings)}: the effect with its 95% interval in the finding's unit, its seeds and its status. "
             f"The exploration's findings and runs are kept in docs/exploration-results/; it also shaped the design, "
             f"so only the confirmation's verdicts count.", "",
             "| finding | condition | exploration | confirmation |", "|---|---|---|---|"]
    lines += [f"| {r.finding} | {cell(r.condition)} | {cell(r.exploration)} | {cell(r.confirmation)} |"
              for r in table.itertuples()]
    return "\n".join(lines)
