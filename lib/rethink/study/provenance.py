"""What shaped a report's numbers, by content rather than by commit: the training code (core/, the run cache's
own hash), the notebook's resolved settings, and the notebook's sweep half (its source up to the call that trains
or reads the runs). run.json records `core_hash` and `results_hash`; the index compares the latter with the one the
checkout would give now, so that a caption edit or a re-render never flags a report and a change that would train
differently always does."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent
CORE = LIB / "core"
NOTEBOOKS = LIB.parent.parent / "notebooks"
# Settings that say where files are, how a report is labelled or judged: none of them changes a run's numbers.
NOT_SHAPING = {"out_dir", "results_dir", "from_results", "deviations", "phase", "criteria", "world_dir",
               "hard_world_dir", "checkpoints_dir", "upstream_checkpoint", "simclr_checkpoint", "runs_dir",
               "learned_loss_factor", "learned_min_above_chance", "learned_min_ap", "learned_min_pose_accuracy",
               "min_evals", "min_evals_after_drop", "converged_tolerance", "pretext_factor", "min_kept_share",
               "pretrain_min_accuracy"}
SWEEP_END = "notebook.results("  # the sweep half ends at the line that trains or reads the runs


def code_hash() -> str:
    """The code that decides a run's numbers: every source file under rethink/core, found by walking it (a
    module added there counts without being listed). A cached run is reused only by the code that made it;
    study, report and workflow code is outside core/, so that changing it never retrains."""
    h = hashlib.sha256()
    for path in sorted(CORE.rglob("*.py")):
        h.update(path.relative_to(CORE).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def sweep_half(notebook: str) -> str:
    """notebooks/<notebook>.py up to and including the statement that trains or reads its runs."""
    text = (NOTEBOOKS / f"{notebook}.py").read_text()
    end = text.find(SWEEP_END)
    if end < 0:
        raise ValueError(f"notebooks/{notebook}.py has no {SWEEP_END}...) call: its sweep half cannot be told apart")
    closing = text.find("\n\n", end)
    return text[:closing if closing >= 0 else len(text)]


def results_hash(parameters: dict, notebook: str, core: str | None = None) -> str:
    """The hash of what shaped a notebook's results.csv: core/, its settings that shape runs, its sweep half."""
    settings = {k: v for k, v in parameters.items() if k not in NOT_SHAPING}
    h = hashlib.sha256()
    h.update((core or code_hash()).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(sweep_half(notebook).encode())
    return h.hexdigest()[:16]


def current_hash(profile: str, notebook: str) -> str | None:
    """The results hash that the checkout would give a report of `notebook` under `profile` now (None: the
    profile or the notebook no longer exists, or the config does not resolve)."""
    from .. import config

    try:
        return results_hash(config.notebook_config(config.load(profile), notebook, root="."), notebook)
    except (ValueError, FileNotFoundError, KeyError):
        return None
