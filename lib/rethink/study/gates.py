"""Validity gates: a comparison counts only when both of its arms trained. Each gate is computed from a
notebook's results.csv alone (and its checkpoints.csv), against thresholds pre-registered in the `gates`
block of config/protocol.yaml:

  learned             final train loss < learned_loss_factor x ln C (C classes; segmentation C + 1), or the
                      metric clearly above chance (classification: accuracy above 100 / C by
                      learned_min_above_chance points; detection: AP above learned_min_ap; pose: pose
                      accuracy above learned_min_pose_accuracy)
  converged           >= min_evals validation evaluations, and the headline metric moved less than
                      converged_tolerance points over the last third of the run, after its last LR drop (the
                      evaluations there whose recorded LR is the final one), read over at least
                      min_evals_after_drop of them (fit spreads three over the stretch after the drop); the note
                      says when they span under a tenth of the run (He et al.'s last drop sits at 96%)
  pretraining worked  the run's checkpoint: its pretext loss <= pretext_factor x its chance value (ln 4
                      rotation, ln 24 jigsaw, ln K SwAV, ln(2B - 1) SimCLR, ln C supervised), and its probe
                      (1-NN or accuracy) above chance; a supervised checkpoint's upstream validation accuracy
                      also >= its profile's floor (pretrain.min_accuracy, percent)
  self-training       a student's teacher kept >= min_kept_share of the pool
  distinct            two compared arms are not the same run (checked per comparison in verdicts.apply_gates)

`run_gates` gives one row per run and gate; `apply_gates` judges each condition on the runs of the arms its effect
compares, each gate shown at its worst run. Written by hand: no pinned library checks training runs this way.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.training.selfsup import chance_loss
from .effects import CONTEXT, TASK_METRIC
from .verdicts import verdict_of

PRETRAINING = "pre-training"  # the `experiment` of a checkpoint's own gate row (BL-1 compares checkpoints)


def pretext_chance(method: str, options: dict, batch_size: int, n_classes: int) -> float | None:
    """The loss a checkpoint's pretext task has at chance: a supervised checkpoint's ln C, a self-supervised
    method's as the method says (rethink.core.training.selfsup; None where it has none, the autoencoder's)."""
    if method == "supervised":
        return math.log(n_classes)
    return chance_loss(method, options, batch_size)


def checkpoint_gates(checkpoints: pd.DataFrame, kinds: dict[str, dict], thresholds: dict,
                     n_upstream_classes: int) -> dict[str, dict]:
    """checkpoint name -> its pre-training gate (value: loss, threshold, passed, note). `checkpoints` is a
    report's checkpoints.csv (checkpoint, metric, value); `kinds` names each checkpoint's method, its options
    and batch size: {"name": {"method": "swav", "options": {...}, "batch_size": 256}}."""
    out = {}
    floor = thresholds.get("pretrain_min_accuracy", 0)
    for name, rows in checkpoints.groupby("checkpoint", sort=False):
        numbers = dict(zip(rows.metric, rows.value))
        kind = kinds.get(name, {"method": "supervised"})
        loss = numbers.get("loss", numbers.get("nt_xent", math.nan))
        chance = pretext_chance(kind["method"], kind.get("options", {}), kind.get("batch_size", 0), n_upstream_classes)
        probe = numbers.get("nn_accuracy", numbers.get("accuracy", math.nan))
        loss_ok = chance is None or loss <= thresholds["pretext_factor"] * chance
        probe_ok = probe > 1 / n_upstream_classes
        loss_text = (f"loss {loss:.3f} vs {thresholds['pretext_factor']:g} x chance {chance:.3f}"
                     if chance is not None else "no chance loss")
        if kind["method"] == "supervised":  # the study's ImageNet model: it must have learned its own task well
            probe_ok = probe_ok and probe * 100 >= floor
            note = f"upstream val accuracy {probe:.1%} ({f'floor {floor:g}%' if floor else 'no floor'}); {loss_text}"
        else:
            note = f"{kind['method']} {loss_text}; 1-NN probe {probe:.1%} vs chance {1 / n_upstream_classes:.1%}"
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
    evals, needed = len(rows), thresholds.get("min_evals_after_drop", 2)
    # last_third_rounded: the last third starts at the evaluation the loop places at two thirds of the run, at the
    # step it rounds that to (rethink.core.training.schedule.evaluation_steps: 800 steps, six evaluations, the
    # fourth at step 533); without it (the exploration's rule) at exactly two thirds.
    start = rows.step.max() * 2 / 3 if evals else 0
    window = rows[rows.step >= (round(start) if thresholds.get("last_third_rounded") else start)]
    lrs = run[(run.split == "train") & (run.metric == "lr")].set_index("step").value
    after = "the last third"
    if len(lrs) and len(window):
        window = window[window.step.map(lrs).le(lrs.loc[lrs.index.max()] * (1 + 1e-9)).to_numpy()]
        after = f"the last third, after the last LR drop ({len(window)} evaluations)"
    moved = float(window.value.max() - window.value.min()) if len(window) >= 2 else math.nan
    tolerance = thresholds["converged_tolerance"]
    if evals < thresholds["min_evals"]:
        return moved, tolerance, False, f"{evals} evaluations < {thresholds['min_evals']}"
    if len(window) < needed:
        return moved, tolerance, False, f"{len(window)} evaluation(s) in {after}: {needed} needed"
    span = (window.step.max() - window.step.min()) / max(rows.step.max(), 1)
    short = f"; they span {span:.0%} of the run, under a tenth" if span < 0.1 else ""
    return moved, tolerance, bool(moved < tolerance), f"moved {moved:.2f} points over {after}{short}"


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
        worse = "lower" if run_task in ("detect", "pose") else "higher"  # an AP floor, else a loss ceiling
        rows.append(dict(ident, gate="learned", value=value, threshold=threshold, passed=passed, note="", worse=worse))
        value, threshold, passed, note = _converged(run, run_task, thresholds)
        rows.append(dict(ident, gate="converged", value=value, threshold=threshold, passed=passed, note=note,
                         worse="higher"))
        kept = run[(run.split == "pseudo") & (run.metric == "kept_share")]
        if len(kept):
            share = float(kept.value.iloc[-1])
            rows.append(dict(ident, gate="self_training", value=share, threshold=thresholds["min_kept_share"],
                             passed=bool(share >= thresholds["min_kept_share"]),
                             note=f"the teacher kept {share:.0%} of the pool", worse="lower"))
        name = checkpoint_of(first) if checkpoint_of else None
        if name is not None and checkpoints:  # the run's own seed's pre-training, else the one shared by every seed
            seeded = f"{name} (seed {int(first['seed'])})" if pd.notna(first.get("seed")) else None
            gate = checkpoints.get(seeded) or checkpoints.get(name)
            if gate:
                rows.append(dict(ident, gate="pretraining", **gate, worse="higher"))
    for name, gate in (checkpoints or {}).items():
        method, seed = split_seed(name)
        rows.append(dict(arm=method, experiment=PRETRAINING, checkpoint=name, gate="pretraining", **gate,
                         worse="higher", **({} if seed is None else {"seed": seed})))
    return pd.DataFrame(rows)


# The keys of the config's `gates` block (each notebook gets them as parameters).
THRESHOLDS = ("learned_loss_factor", "learned_min_above_chance", "learned_min_ap", "learned_min_pose_accuracy",
              "min_evals", "min_evals_after_drop", "converged_tolerance", "pretext_factor", "min_kept_share",
              "pretrain_min_accuracy")


def split_seed(name: str) -> tuple[str, int | None]:
    """'<name> (seed <k>)' (records.checkpoint_files) -> (name, k); any other name -> (name, None)."""
    match = re.fullmatch(r"(.*) \(seed (\d+)\)", name)
    return (match.group(1), int(match.group(2))) if match else (name, None)


def per_seed_pretraining(results: pd.DataFrame) -> bool:
    """Whether every pre-trained arm of `results` started each seed from its own checkpoint (protocol v2): its
    `checkpoint` column names more than one file per arm. Results from before that column: one, shared."""
    if "checkpoint" not in results.columns or results.checkpoint.isna().all():
        return False
    return bool(results.dropna(subset=["checkpoint"]).groupby("arm").checkpoint.nunique().min() > 1)


def checkpoint_by_init(run) -> str | None:
    """The checkpoint a run started from, named as its init (none from scratch)."""
    init = run.get("init")
    return None if not isinstance(init, str) or init == "scratch" else init


def report_gates(results: pd.DataFrame, parameters: dict, out_dir: str, task: str = "classify",
                 checkpoint_of=None) -> pd.DataFrame:
    """run_gates for a notebook: thresholds and class counts from its parameters, the checkpoints' gates from
    the checkpoints.csv beside its results (a checkpoint named after a self-supervised method, or
    '<method> (...)', is that method's; any other is supervised)."""
    thresholds = {k: parameters[k] for k in THRESHOLDS}
    # Protocol v2's converged gate starts the last third at the step the loop rounds two thirds to (a recorded
    # deviation, docs/protocol.md); the exploration's re-rendered reports keep its rule, exactly two thirds.
    thresholds["last_third_rounded"] = parameters.get("phase") != "exploration"
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
    if method not in set(parameters.get("selfsup_methods", [])):
        return dict(method="supervised", options={}, batch_size=0)
    return dict(method=method, options=parameters["selfsup_options"].get(method, {}),
                batch_size=parameters["selfsup_batch_size"])


def checkpoint_chances(names, parameters: dict) -> dict[str, float | None]:
    """Each checkpoint's pretext loss at chance (None: it has none), for the pre-training figure."""
    return {name: pretext_chance(**checkpoint_kind(name, parameters), n_classes=parameters["n_upstream_classes"])
            for name in names}


def arm_gates(gates: pd.DataFrame, selector: dict) -> list[dict]:
    """The gates of one arm (its runs matching `selector`: arm name and cell), one entry per gate, shown at its
    worst run: the failing run furthest on the wrong side (or, when all passed, the run nearest its threshold;
    a missing value counts as worst), with the threshold, its seed, and how many of the runs failed."""
    rows = _select(gates, selector)
    out = []
    for gate, g in rows.groupby("gate", sort=False):
        failed = g[~g.passed.astype(bool)]
        pool = failed if len(failed) else g
        higher = "worse" not in pool.columns or pool.worse.iloc[0] != "lower"
        order = pool.value.astype(float).fillna(math.inf if higher else -math.inf)
        shown = pool.loc[order.idxmax() if higher else order.idxmin()]
        seed = shown.get("seed")
        out.append(dict(arm=selector, gate=gate, value=_plain(shown.value), threshold=_plain(shown.threshold),
                        passed=bool(len(failed) == 0), runs=len(g), failed_runs=len(failed), note=str(shown.note),
                        worst_seed=None if seed is None or pd.isna(seed) else int(seed)))
    return out


def _select(gates: pd.DataFrame, selector: dict) -> pd.DataFrame:
    rows = gates
    for key, value in selector.items():
        if key not in rows.columns:
            continue
        rows = rows[rows[key] == value] if not (isinstance(value, float) and np.isnan(value)) else rows
    return rows


def _plain(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def pretraining_replicates(gates: pd.DataFrame, arms: list[dict]) -> int | None:
    """The distinct pre-training checkpoints behind the seeds of the effect's pre-trained arms (the fewest over
    those arms): a run's `checkpoint` column where its results have one, else one checkpoint per arm (each
    seed fine-tuned the same). None when no arm is pre-trained."""
    counts = []
    for sel in arms:
        rows = _select(gates, sel)
        experiment = rows["experiment"] if "experiment" in rows else pd.Series(None, index=rows.index, dtype=object)
        init = rows["init"].fillna("scratch") if "init" in rows else pd.Series("scratch", index=rows.index)
        # The fine-tuning runs' checkpoints; a pre-training arm of its own (BL-1) counts its checkpoints' rows.
        pre = rows[experiment.ne(PRETRAINING) & init.ne("scratch")]
        pre = pre if len(pre) else rows[experiment.eq(PRETRAINING)]
        if len(pre):  # results from before a pre-training per seed have no checkpoint column: one, shared
            counts.append(max(1, pre.checkpoint.nunique()) if "checkpoint" in pre.columns else 1)
    return min(counts) if counts else None


REASON_ORDER = ("not_run", "gate_failed", "not_replicated")  # which reason a `not tested` finding gives first


def apply_gates(finding: dict, gates: pd.DataFrame | None) -> dict:
    """The finding with each condition judged only on arms that passed their validity gates: a condition whose
    arms failed a gate (or whose two arms are one run, or whose effect cannot decide it for another reason) is
    `not tested`, never `failed`, with each reason in `because`; each compared arm's gates at their worst run;
    each condition's pre-training replicates; and the verdict recomputed from the primary condition."""
    arms, conditions = {}, []
    have_gates = gates is not None and len(gates)
    for cond in finding["conditions"]:
        reasons = []
        for sel in cond["arms"]:
            key = json.dumps(sel, sort_keys=True)
            arms.setdefault(key, arm_gates(gates, sel) if have_gates else [])
            reasons += [dict(kind="gate_failed", gate=g["gate"], arm=sel, value=g["value"], threshold=g["threshold"],
                             failed_runs=g["failed_runs"], runs=g["runs"], detail=g["note"])
                        for g in arms[key] if not g["passed"]]
        if cond.get("same_runs"):
            reasons.append(dict(kind="gate_failed", gate="distinct", arm=None, value=None, threshold=None,
                                failed_runs=None, runs=None, detail="the compared arms are one and the same run "
                                                                    "(every difference is 0)"))
        reasons += cond.get("because", [])
        reasons.sort(key=lambda r: REASON_ORDER.index(r["kind"]))
        entry = {**cond, "status": "not tested" if reasons else cond["status"], "tested": not reasons,
                 "because": reasons,
                 "pretraining_replicates": pretraining_replicates(gates, cond["arms"]) if have_gates else None}
        conditions.append(entry)
    primary = next(c for c in conditions if c["primary"])
    return {**finding, "conditions": conditions, "gates": [g for entries in arms.values() for g in entries],
            "verdict": verdict_of(conditions), "because": primary["because"][0] if primary["because"] else None,
            "pretraining_replicates": primary["pretraining_replicates"]}
