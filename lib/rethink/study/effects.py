"""Effects: what a finding measures, as a mean over seeds with its 95% Student-t interval.

A results table (rethink.study.runs.sweep's tidy rows) becomes effects here: each arm's final metric per seed,
paired differences between arms, means over cells, rank correlations. An Effect keeps what the verdicts and the
power calculation need (its standard error and degrees of freedom, the arms it compares) and why no gate can let
it decide a condition (`because`: one pre-training replicate, runs a profile did not make, a bound it fails).
A paper's module (he, zo, nd, bl) names its effects with these helpers; rethink.study.verdicts judges them.

Statistics: scipy.stats for t and chi-square quantiles; the interval of a mean over cells (Satterthwaite's
degrees of freedom) is written by hand, and tests/study/test_study.py checks it against a hand computation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..core.training.evaluation import SELECTED_BY

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Effect:
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""
    se: float = math.nan       # standard error of the estimate, on the scale the interval is built on
    df: float = math.nan       # the t distribution's degrees of freedom
    scale: str = "identity"    # "fisher_z": se and the interval are built on atanh's scale (rank correlations)
    interval: str = "per-seed values"  # which interval: per-seed values or means, or the cells' pooled variances
    arms: tuple = ()           # the arms it compares, each {"arm": name, **cell}: their runs' gates decide it
    same_runs: bool = False    # every paired difference is exactly 0: the compared arms are one run (gate distinct)
    because: tuple = ()        # reasons (dicts with a `kind`) that no gate lifts: see not_replicated, not_run, failed_bound
    per_seed: tuple = ()       # (seed, value) pairs the estimate is the mean of, where the seeds are known


def not_replicated(detail: str) -> dict:
    """Seeds that are not independent replicates of what the effect is about (one pre-training for all)."""
    return {"kind": "not_replicated", "detail": detail}


def not_run(detail: str, minutes: float | None = None) -> dict:
    """Runs a profile does not make (cut for its budget): `minutes` is their measured cost, where known."""
    return {"kind": "not_run", "detail": detail, "minutes": minutes}


def failed_bound(gate: str, value: float, threshold: float, detail: str) -> dict:
    """A pre-registered validity bound of the effect itself that fails (ND-1's share of extrapolated utilities, a
    finding's precondition): reported as a failed gate, with the number and its threshold."""
    return {"kind": "gate_failed", "gate": gate, "arm": None, "value": value, "threshold": threshold,
            "failed_runs": None, "runs": None, "detail": detail}


def _interval(estimate: float, se: float, df: float) -> tuple[float, float]:
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se)
    return estimate - half, estimate + half


def mean_effect(values, unit: str = "") -> Effect:
    """Mean of per-seed values (or paired differences) with a Student-t interval (few seeds: t, not normal).
    `values` is a sequence, or a mapping seed -> value whose pairs the effect keeps (for the effect plots)."""
    per_seed = tuple((int(k), float(v)) for k, v in values.items()) if isinstance(values, dict) else ()
    d = np.asarray(list(values.values() if isinstance(values, dict) else values), dtype=float)
    if len(d) == 0:
        raise ValueError("an effect needs at least one seed")
    mean = float(d.mean())
    if len(d) == 1:  # one seed says nothing about spread
        return Effect(mean, -math.inf, math.inf, 1, unit, per_seed=per_seed)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    return Effect(mean, *_interval(mean, se, len(d) - 1), len(d), unit, se=se, df=len(d) - 1, per_seed=per_seed)


def cells_mean_effect(cells, unit: str = "") -> Effect:
    """The mean over cells of per-seed values (each cell: seed -> value, e.g. a student's gain over its teacher),
    over the seeds every cell has. Its interval is the wider of two: the t interval of the per-seed means, and the
    interval from the cells' own variances, pooled (Var = sum of s_k^2 / n / K^2, Satterthwaite's degrees of
    freedom). When the cells' values happen to anti-correlate across seeds, the per-seed means vary less than any
    cell does and their interval claims more than the data hold; the pooled one does not."""
    cells = [dict(c) for c in cells]
    seeds = sorted(set.intersection(*(set(c) for c in cells))) if cells else []
    per_seed = mean_effect({s: float(np.mean([c[s] for c in cells])) for s in seeds}, unit)
    per_seed = replace(per_seed, interval="per-seed means over cells")
    if len(seeds) < 2:
        return per_seed
    k, n = len(cells), len(seeds)
    parts = [float(np.var([c[s] for s in seeds], ddof=1)) / n / k ** 2 for c in cells]
    variance = sum(parts)
    if variance == 0:
        return per_seed
    df = variance ** 2 / sum(p ** 2 / (n - 1) for p in parts)
    pooled = Effect(per_seed.estimate, *_interval(per_seed.estimate, math.sqrt(variance), df), n, unit,
                    se=math.sqrt(variance), df=df, interval="pooled cell variances", per_seed=per_seed.per_seed)
    wider = pooled if pooled.ci_high - pooled.ci_low > per_seed.ci_high - per_seed.ci_low else per_seed
    return wider


def rank_effect(rhos, unit: str = "Spearman rho", because: tuple = ()) -> Effect:
    """The mean of per-seed rank correlations (a sequence, or seed -> rho), with a Student-t interval on Fisher's
    z = atanh(rho), mapped back with tanh, so that it stays in [-1, 1]. `because`: why the seeds cannot decide."""
    pairs = list(rhos.items()) if isinstance(rhos, dict) else list(enumerate(rhos))
    rho = np.clip(np.asarray([r for _, r in pairs], dtype=float), -0.999, 0.999)  # |rho| = 1 has z = inf
    z = mean_effect(np.arctanh(rho))
    return Effect(float(np.tanh(z.estimate)), float(np.tanh(z.ci_low)), float(np.tanh(z.ci_high)), z.n, unit,
                  se=z.se, df=z.df, scale="fisher_z", because=tuple(because),
                  per_seed=tuple((int(s), float(r)) for s, r in pairs) if isinstance(rhos, dict) else ())


def paired_differences(a: dict, b: dict) -> dict:
    """seed -> a - b over the seeds both arms ran (arms of one seed share data order and head init)."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def all_zero(differences) -> bool:
    """Every per-seed difference exactly 0 (and at least one): the compared arms are one run."""
    values = list(differences)
    return bool(values) and all(v == 0 for v in values)


def paired_effect(a: dict, b: dict, unit: str = "") -> Effect:
    """Effect of a - b over the seeds both arms ran."""
    differences = paired_differences(a, b)
    return replace(mean_effect(differences, unit), same_runs=all_zero(differences.values()))


def with_arms(effect: Effect, arms, differences=None) -> Effect:
    """The effect with the arms it compares; `differences` (its per-seed values) all exactly 0 mark the
    compared arms as one run (without them, the effect's own mark stands)."""
    marked = {} if differences is None else {"same_runs": all_zero(differences)}
    return replace(effect, arms=tuple(arms), **marked)


def because(effect: Effect, *reasons: dict) -> Effect:
    """The effect with more reasons that keep it from deciding (falsy reasons are left out)."""
    return replace(effect, because=effect.because + tuple(r for r in reasons if r))


# ---------------------------------------------------------------------------------------------
# Results tables -> per-seed values

# Each task's headline metric, and the unit of every metric once turned into points.
TASK_METRIC = SELECTED_BY
METRIC_UNITS = {"accuracy": "accuracy points", "miou": "mIoU points", "AP": "AP points", "AP50": "AP50 points",
                "AP75": "AP75 points", "pose_accuracy": "pose accuracy points"}
CONTEXT = ("experiment", "world", "task", "schedule")  # columns that tell apart arms of one name (HE-3: its best schedule)


def final_metric(results: pd.DataFrame, metric: str, split: str = "val") -> pd.DataFrame:
    """The last evaluation of each run: one row per (arm, schedule, seed)."""
    rows = results[(results.metric == metric) & (results.split == split)]
    return rows.loc[rows.groupby("run_id").step.idxmax()]


def scored_split(results: pd.DataFrame, metric: str) -> str:
    """Where the verdicts read `metric` (protocol v2): 'test' when every run scored it on the held-out split
    (runs.sweep's held_out), else 'val' (results made before the held-out splits, or a profile without one)."""
    rows = results[results.metric == metric]
    tested = set(rows[rows.split == "test"].run_id)
    return "test" if tested and tested == set(rows.run_id) else "val"


def arm_rows(final: pd.DataFrame, arm: str, **where) -> pd.DataFrame:
    """The rows of one arm in `final` that match `where` (e.g. schedule=6.0)."""
    rows = final[final.arm == arm]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return rows


def seed_values(final: pd.DataFrame, arm: str, **where) -> dict[int, float]:
    """seed -> value of one arm in the rows of `final` that match `where` (e.g. schedule=6.0)."""
    rows = arm_rows(final, arm, **where)
    return dict(zip(rows.seed, rows.value))


def seed_gaps(final: pd.DataFrame, a: str, b: str, **where) -> dict[int, float]:
    """seed -> arm a minus arm b, over the rows matching `where`."""
    return paired_differences(seed_values(final, a, **where), seed_values(final, b, **where))


def selector(arm: str, **where) -> dict:
    """An arm in a cell, as an effect names it: plain Python values (findings.json is JSON)."""
    return {"arm": arm, **{k: (v.item() if hasattr(v, "item") else v) for k, v in where.items()}}


def arm_selector(final: pd.DataFrame, arm: str, **where) -> dict:
    """selector() for an arm of `final`, with the context columns its rows agree on (ND-1's rotation runs and
    ND-3's share a name; their `world` tells them apart)."""
    rows = arm_rows(final, arm, **where)
    context = {c: rows[c].iloc[0] for c in CONTEXT if c in rows.columns and c not in where and len(rows)
               and rows[c].nunique(dropna=False) == 1 and pd.notna(rows[c].iloc[0])}
    return selector(arm, **where, **context)


def gap(final: pd.DataFrame, a: str, b: str, metric: str, **where) -> Effect:
    """Arm a minus arm b, paired by seed, over the rows matching `where`."""
    effect = paired_effect(seed_values(final, a, **where), seed_values(final, b, **where), unit=METRIC_UNITS[metric])
    return replace(effect, arms=(arm_selector(final, a, **where), arm_selector(final, b, **where)))


def arm_text(sel: dict) -> str:
    """An arm selector in words: "scratch (aug=S4, label_fraction=1)"."""
    cell = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sel.items() if k != "arm")
    return sel["arm"] + (f" ({cell})" if cell else "")


def require_member(name: str, value, allowed: list, allowed_name: str) -> None:
    """A criterion that names a cell of the grid must name one that runs: checked before any training."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} must be one of the {allowed_name} {list(allowed)}")
