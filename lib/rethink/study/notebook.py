"""A notebook's two halves around its findings: the results (trained and written, or read back from a report's
results.csv) and the findings judged on arms that passed their gates (then written to findings.json). Every
notebook does these the same way; its own code builds the runs and names the findings."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from . import gates, records


def results(settings, train: Callable[[], pd.DataFrame], checkpoints: dict[str, str] | None = None) -> pd.DataFrame:
    """Unless `from_results`, train() is called and its results written (with run.json and, for `checkpoints`,
    each checkpoint's own numbers); then results.csv is read back: what everything after it reads."""
    if not settings.from_results:
        records.write_results(settings.out_dir, train(), settings, checkpoints)
    return records.read_results(settings.out_dir, settings.results_dir if settings.from_results else None)


def judge(settings, findings: list[dict], results: pd.DataFrame, task: str = "classify",
          checkpoint_of=gates.checkpoint_by_init) -> list[dict]:
    """The findings with their gates applied (each run's gates from `results`; `checkpoint_of(run)` names the
    checkpoint whose pre-training gate a run inherits), written to findings.json with the phase and the deviations."""
    checked = gates.report_gates(results, settings, settings.out_dir, task, checkpoint_of)
    gated = [gates.apply_gates(f, checked) for f in findings]
    return records.write_findings(settings.out_dir, gated, settings.from_results, settings.deviations, settings.phase)
