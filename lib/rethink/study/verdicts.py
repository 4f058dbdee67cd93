"""Effects with confidence intervals, and verdicts computed against pre-registered criteria.

A criterion (written in config/study.yaml before any run) is a list of conditions on named
effects. Each condition is judged on the effect's confidence interval:
  met       the whole interval satisfies it,
  failed    the whole interval violates it,
  undecided otherwise (the interval is too wide to tell).
Verdict: any condition failed -> "not reproduced"; all met -> "reproduced"; else "inconclusive".

The helpers below turn a results table (rethink.study.runs.sweep's tidy rows) into effects: each arm's
final metric per seed, paired differences between arms, and one findings.json entry per finding. A
paper's module (he, zo, nd, bl) names its effects and conditions with them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import numpy as np
import pandas as pd
from scipy import stats

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
OPS = (">", "<", "abs<=")


@dataclass(frozen=True)
class Effect:
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""


def mean_effect(differences, confidence: float = 0.95, unit: str = "") -> Effect:
    """Mean of per-seed differences with a Student-t confidence interval (few seeds: t, not normal)."""
    d = np.asarray(list(differences), dtype=float)
    if len(d) == 0:
        raise ValueError("an effect needs at least one seed")
    mean = float(d.mean())
    if len(d) == 1:  # one seed says nothing about spread
        return Effect(mean, -math.inf, math.inf, 1, unit)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return Effect(mean, mean - half, mean + half, len(d), unit)


def paired_differences(a: dict, b: dict) -> dict:
    """seed -> a - b over the seeds both arms ran (arms of one seed share data order and head init)."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def paired_effect(a: dict, b: dict, confidence: float = 0.95, unit: str = "") -> Effect:
    """Effect of a - b over the seeds both arms ran."""
    return mean_effect(paired_differences(a, b).values(), confidence, unit)


def condition_status(effect: Effect, op: str, value: float) -> str:
    lo, hi = effect.ci_low, effect.ci_high
    if op == ">":
        return "met" if lo > value else "failed" if hi <= value else "undecided"
    if op == "<":
        return "met" if hi < value else "failed" if lo >= value else "undecided"
    if op == "abs<=":
        if -value <= lo and hi <= value:
            return "met"
        return "failed" if hi < -value or lo > value else "undecided"
    raise ValueError(f"criterion op must be one of {', '.join(OPS)}; got {op!r}")


def verdict(statuses: list[str]) -> str:
    if "failed" in statuses:
        return "not reproduced"
    if statuses and all(s == "met" for s in statuses):
        return "reproduced"
    return "inconclusive"


def judge(finding_id: str, claim: str, criterion: dict, effects: dict[str, Effect], paper: str,
          profile: str) -> dict:
    """One findings.json entry: the pre-registered criterion, every effect it names, and the verdict."""
    conditions = []
    for cond in criterion["conditions"]:
        if cond["effect"] not in effects:
            raise KeyError(f"{finding_id}: criterion names effect {cond['effect']!r}, computed: {sorted(effects)}")
        effect = effects[cond["effect"]]
        conditions.append({**cond, **asdict(effect), "status": condition_status(effect, cond["op"], cond["value"])})
    primary = effects[criterion.get("primary", criterion["conditions"][0]["effect"])]
    return {
        "id": finding_id,
        "claim": claim,
        "criterion": criterion,
        "effect": {k: v for k, v in asdict(primary).items() if k != "n"},
        "conditions": conditions,
        "n_seeds": min(e.n for e in effects.values()),
        "paper": paper,
        "profile": profile,
        "verdict": verdict([c["status"] for c in conditions]),
    }


# Each task's headline metric, and the unit of every metric once turned into points.
TASK_METRIC = {"classify": "accuracy", "segment": "miou", "detect": "AP", "pose": "pose_accuracy"}
METRIC_UNITS = {"accuracy": "accuracy points", "miou": "mIoU points", "AP": "AP points", "AP50": "AP50 points",
                "AP75": "AP75 points", "pose_accuracy": "pose accuracy points"}


def final_metric(results: pd.DataFrame, metric: str, split: str = "val") -> pd.DataFrame:
    """The last evaluation of each run: one row per (arm, schedule, seed)."""
    rows = results[(results.metric == metric) & (results.split == split)]
    return rows.loc[rows.groupby("run_id").step.idxmax()]


def seed_values(final: pd.DataFrame, arm: str, **where) -> dict[int, float]:
    """seed -> value of one arm in the rows of `final` that match `where` (e.g. schedule=6.0)."""
    rows = final[final.arm == arm]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return dict(zip(rows.seed, rows.value))


def gap(final: pd.DataFrame, a: str, b: str, metric: str, **where) -> Effect:
    """Arm a minus arm b, paired by seed, over the rows matching `where`."""
    return paired_effect(seed_values(final, a, **where), seed_values(final, b, **where), unit=METRIC_UNITS[metric])


def seed_gaps(final: pd.DataFrame, a: str, b: str, **where) -> dict[int, float]:
    """seed -> arm a minus arm b, over the rows matching `where`."""
    return paired_differences(seed_values(final, a, **where), seed_values(final, b, **where))


def finding(claims: dict, finding_id: str, text: str, conditions: list[dict], effects: dict[str, Effect],
            profile: str, figure: str | None = None, panel: str | None = None, primary: str | None = None) -> dict:
    """A findings.json entry for a finding of a paper's `claims` (its CLAIMS table), judged against its
    pre-registered conditions."""
    criterion = dict(text=text, conditions=conditions, primary=primary or conditions[0]["effect"])
    entry = judge(finding_id, claims[finding_id]["claim"], criterion, effects, claims[finding_id]["paper"], profile)
    return {**entry, "figure": figure, **({"panel": panel} if panel else {})}


def require_member(name: str, value, allowed: list, allowed_name: str) -> None:
    """A criterion that names a cell of the grid must name one that runs: checked before any training."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} must be one of the {allowed_name} {list(allowed)}")


