"""Validity gates: a comparison counts only when both of its arms trained. Each gate is computed from a
notebook's results.csv alone (and its checkpoints.csv), against thresholds pre-registered in the `gates`
block of config/study.yaml:

  learned             final train loss < learned_loss_factor x ln C (C classes; segmentation C + 1), or the
                      metric clearly above chance (classification: accuracy above 100 / C by
                      learned_min_above_chance points; detection: AP above learned_min_ap; pose: pose
                      accuracy above learned_min_pose_accuracy)
  converged           >= min_evals validation evaluations, and the headline metric moved less than
                      converged_tolerance points over the last third of the run, after its last LR drop (the
                      evaluations there whose recorded LR is the final one; fit puts >= 2 after the drop)
  pretraining worked  the run's checkpoint: its pretext loss <= pretext_factor x its chance value (ln 4
                      rotation, ln 24 jigsaw, ln K SwAV, ln(2B - 1) SimCLR, ln C supervised), and its probe
                      (1-NN or accuracy) above chance
  self-training       a student's teacher kept >= min_kept_share of the pool
  distinct            two compared arms are not the same run (checked per comparison in verdicts.apply_gates)

`run_gates` gives one row per run and gate; `verdicts.apply_gates` judges each condition on the runs of the
arms its effect compares. Written by hand: no pinned library checks training runs this way.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .verdicts import CONTEXT, TASK_METRIC

PRETRAINING = "pre-training"  # the `experiment` of a checkpoint's own gate row (BL-1 compares checkpoints)


def pretext_chance(method: str, options: dict, batch_size: int, n_classes: int) -> float | None:
    """The loss a method's pretext task has at chance (None: no chance value, the autoencoder's)."""
    chance = {"rotation": math.log(4), "jigsaw": math.log(24), "swav": math.log(options.get("prototypes", 32)),
              "simclr": math.log(2 * batch_size - 1), "supervised": math.log(n_classes)}
    return chance.get(method)


def checkpoint_gates(checkpoints: pd.DataFrame, kinds: dict[str, dict], thresholds: dict,
                     n_upstream_classes: int) -> dict[str, dict]:
    """checkpoint name -> its pre-training gate (value: loss, threshold, passed, note). `checkpoints` is a
    report's checkpoints.csv (checkpoint, metric, value); `kinds` names each checkpoint's method, its options
    and batch size: {"name": {"method": "swav", "options": {...}, "batch_size": 256}}."""
    out = {}
    for name, rows in checkpoints.groupby("checkpoint", sort=False):
        numbers = dict(zip(rows.metric, rows.value))
        kind = kinds.get(name, {"method": "supervised"})
        loss = numbers.get("loss", numbers.get("nt_xent", math.nan))
        chance = pretext_chance(kind["method"], kind.get("options", {}), kind.get("batch_size", 0), n_upstream_classes)
        probe = numbers.get("nn_accuracy", numbers.get("accuracy", math.nan))
        loss_ok = chance is None or loss <= thresholds["pretext_factor"] * chance
        probe_ok = probe > 1 / n_upstream_classes
        note = (f"{kind['method']} loss {loss:.3f} vs {thresholds['pretext_factor']:g} x chance {chance:.3f}"
                if chance is not None else f"{kind['method']}: no chance loss") + f"; probe {probe:.3f} vs chance " \
               f"{1 / n_upstream_classes:.3f}"
        out[name] = dict(value=loss, threshold=thresholds["pretext_factor"] * chance if chance else math.nan,
                         passed=bool(loss_ok and probe_ok), note=note)
    return out


def _last(run: pd.DataFrame, split: str, metric: str) -> float | None:
    """The run's value of `metric` at its last evaluation (None if it has none)."""
    rows = run[(run.split == split) & (run.metric == metric)]
    return float(rows.loc[rows.step.idxmax(), "value"]) if len(rows) else None


def _learned(run: pd.DataFrame, task: str, thresholds: dict, n_classes: int) -> tuple[float, float, bool]:
    if "diverged" in set(run.metric):
        return math.inf, math.nan, False
    if task in ("classify", "segment"):
        loss, accuracy = _last(run, "train", "loss"), _last(run, "val", "accuracy")
        value = math.nan if loss is None else loss
        threshold = thresholds["learned_loss_factor"] * math.log(n_classes + (task == "segment"))
        # Strong augmentation keeps the training loss high on a model that learned: its accuracy says so.
        above = (task == "classify" and accuracy is not None
                 and accuracy > 100 / n_classes + thresholds["learned_min_above_chance"])
        return value, threshold, bool(value < threshold or above)
    metric, floor = (("AP", thresholds["learned_min_ap"]) if task == "detect"
                     else ("pose_accuracy", thresholds["learned_min_pose_accuracy"]))
    value = _last(run, "val", metric)
    value = math.nan if value is None else value
    return value, floor, bool(value > floor)


def _converged(run: pd.DataFrame, task: str, thresholds: dict) -> tuple[float, float, bool, str]:
    """Over the last third of the run, after its last LR drop: the evaluations in the last third whose recorded
    LR (a train row 'lr') is the run's final one. He et al.'s drops sit inside the last third of a long
    schedule, where the metric jumps at each; a run without LR rows is read over its whole last third."""
    rows = run[(run.split == "val") & (run.metric == TASK_METRIC[task])].sort_values("step")
    evals = len(rows)
    window = rows[rows.step >= rows.step.max() * 2 / 3] if evals else rows
    lrs = run[(run.split == "train") & (run.metric == "lr")].set_index("step").value
    after = "the last third"
    if len(lrs) and len(window):
        window = window[window.step.map(lrs).le(lrs.loc[lrs.index.max()] * (1 + 1e-9)).to_numpy()]
        after = f"the last third, after the last LR drop ({len(window)} evaluations)"
    moved = float(window.value.max() - window.value.min()) if len(window) >= 2 else math.nan
    if evals < thresholds["min_evals"]:
        return moved, thresholds["converged_tolerance"], False, f"{evals} evaluations < {thresholds['min_evals']}"
    if len(window) < 2:
        return moved, thresholds["converged_tolerance"], False, f"{len(window)} evaluation(s) in {after}: 2 needed"
    passed = bool(moved < thresholds["converged_tolerance"])
    return moved, thresholds["converged_tolerance"], passed, f"moved {moved:.2f} points over {after}"


def run_gates(results: pd.DataFrame, thresholds: dict, n_classes: int, task: str = "classify",
              checkpoints: dict[str, dict] | None = None, checkpoint_of=None) -> pd.DataFrame:
    """One row per (run, gate): the run's own columns (arm, seed, cell ...), gate, value, threshold, passed,
    note. A results column `task` overrides `task`; `checkpoint_of(row) -> checkpoint name or None` names the
    checkpoint a run started from, whose pre-training gate (`checkpoints`, from checkpoint_gates) it inherits."""
    rows = []
    runs = results[results.run_id.notna() & results.metric.isin(["loss", "accuracy", "AP", "miou", "pose_accuracy",
                                                                   "diverged", "kept_share", "lr"])]
    # A run is its run_id within its experiment and task (notebook 01 names its detection and classification
    # runs alike).
    keys = ["run_id"] + [c for c in CONTEXT if c in runs.columns]
    for _, run in runs.groupby(keys, sort=False, dropna=False):
        if run.run_id.iloc[0] == "invariance":  # BL-1's probe rows are no training run
            continue
        first = run.iloc[0]
        run_task = first["task"] if "task" in run.columns and isinstance(first.get("task"), str) else task
        ident = {k: v for k, v in first.items() if k not in ("step", "epoch", "split", "metric", "value")}
        value, threshold, passed = _learned(run, run_task, thresholds, n_classes)
        rows.append(dict(ident, gate="learned", value=value, threshold=threshold, passed=passed, note=""))
        value, threshold, passed, note = _converged(run, run_task, thresholds)
        rows.append(dict(ident, gate="converged", value=value, threshold=threshold, passed=passed, note=note))
        kept = run[(run.split == "pseudo") & (run.metric == "kept_share")]
        if len(kept):
            share = float(kept.value.iloc[-1])
            rows.append(dict(ident, gate="self_training", value=share, threshold=thresholds["min_kept_share"],
                             passed=bool(share >= thresholds["min_kept_share"]),
                             note=f"the teacher kept {share:.0%} of the pool"))
        name = checkpoint_of(first) if checkpoint_of else None
        if name is not None and checkpoints and name in checkpoints:
            rows.append(dict(ident, gate="pretraining", **checkpoints[name]))
    rows += [dict(arm=name, experiment=PRETRAINING, gate="pretraining", **gate) for name, gate in (checkpoints or {}).items()]
    return pd.DataFrame(rows)


# The keys of the config's `gates` block (each notebook gets them as parameters).
THRESHOLDS = ("learned_loss_factor", "learned_min_above_chance", "learned_min_ap", "learned_min_pose_accuracy",
              "min_evals", "converged_tolerance", "pretext_factor", "min_kept_share")


def report_gates(results: pd.DataFrame, parameters: dict, out_dir: str, task: str = "classify",
                 checkpoint_of=None) -> pd.DataFrame:
    """run_gates for a notebook: thresholds and class counts from its parameters, the checkpoints' gates from
    the checkpoints.csv beside its results (a checkpoint named after a self-supervised method, or
    '<method> (...)', is that method's; any other is supervised)."""
    thresholds = {k: parameters[k] for k in THRESHOLDS}
    path = Path(out_dir) / "checkpoints.csv"
    checkpoints = {}
    if path.is_file():
        table = pd.read_csv(path)
        kinds = {name: checkpoint_kind(name, parameters) for name in table.checkpoint.unique()}
        checkpoints = checkpoint_gates(table, kinds, thresholds, parameters["n_upstream_classes"])
    return run_gates(results, thresholds, parameters["n_classes"], task, checkpoints, checkpoint_of)


def checkpoint_kind(name: str, parameters: dict) -> dict:
    """A checkpoint's method, options and batch size from its name: one named after a self-supervised method, or
    '<method> (...)', is that method's; any other is supervised."""
    method = name.split(" ")[0]
    return dict(method=method if method in set(parameters.get("selfsup_methods", [])) else "supervised",
                options={"prototypes": parameters["swav_prototypes"]}, batch_size=parameters["selfsup_batch_size"])


def checkpoint_chances(names, parameters: dict) -> dict[str, float | None]:
    """Each checkpoint's pretext loss at chance (None: it has none), for the pre-training figure."""
    return {name: pretext_chance(**checkpoint_kind(name, parameters), n_classes=parameters["n_upstream_classes"])
            for name in names}


def arm_gates(gates: pd.DataFrame, selector: dict) -> list[dict]:
    """The gates of one arm (its runs matching `selector`: arm name and cell), one entry per gate: the value of
    its first failing run (or of its first run), the threshold, and whether every run passed."""
    rows = gates
    for key, value in selector.items():
        if key not in rows.columns:
            continue
        rows = rows[rows[key] == value] if not (isinstance(value, float) and np.isnan(value)) else rows
    out = []
    for gate, g in rows.groupby("gate", sort=False):
        failed = g[~g.passed.astype(bool)]
        shown = failed.iloc[0] if len(failed) else g.iloc[0]
        out.append(dict(arm=selector, gate=gate, value=_plain(shown.value), threshold=_plain(shown.threshold),
                        passed=bool(len(failed) == 0), runs=len(g), failed_runs=len(failed), note=str(shown.note)))
    return out


def _plain(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
