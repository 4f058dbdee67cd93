"""Effects with confidence intervals, and verdicts computed against pre-registered criteria.

A criterion (written in config/study.yaml before any run) is a list of conditions on named
effects. Each condition is judged on the effect's confidence interval:
  met       the whole interval satisfies it,
  failed    the whole interval violates it,
  undecided otherwise (the interval is too wide to tell),
and only when every arm its effect compares passed its validity gates (rethink.study.gates); else it is
`not tested`. Verdicts, in this order of precedence:
  not reproduced  a condition failed on arms that passed their gates,
  reproduced      every condition met on arms that passed their gates,
  not tested      some condition's arms failed a gate (the entry says which, with the numbers),
  inconclusive    the gates pass but an interval is too wide: the entry gives the minimum detectable effect
                  at the observed spread and how many seeds would decide the margin.

The helpers below turn a results table (rethink.study.runs.sweep's tidy rows) into effects: each arm's
final metric per seed, paired differences between arms, and one findings.json entry per finding. A
paper's module (he, zo, nd, bl) names its effects and conditions with them.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

VERDICTS = ("reproduced", "not reproduced", "not tested", "inconclusive")
OPS = (">", "<", "abs<=")
POWER = 0.8  # the minimum detectable effect: two-sided 5%, power 80%


@dataclass(frozen=True)
class Effect:
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""
    arms: tuple = ()          # the arms it compares, each {"arm": name, **cell}: their runs' gates decide it
    same_runs: bool = False   # every paired difference is exactly 0: the compared arms are one run (gate distinct)
    untestable: str = ""      # why no gate can make it decide the finding (e.g. one pre-training replicate)


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
    differences = paired_differences(a, b)
    return replace(mean_effect(differences.values(), confidence, unit), same_runs=all_zero(differences.values()))


def all_zero(differences) -> bool:
    """Every per-seed difference exactly 0 (and at least one): the compared arms are one run."""
    values = list(differences)
    return bool(values) and all(v == 0 for v in values)


def standard_error(effect: Effect) -> float:
    """The effect's standard error, read back from its 95% Student-t interval."""
    return (effect.ci_high - effect.ci_low) / 2 / stats.t.ppf(0.975, effect.n - 1)


def rank_effect(rhos, replicated: bool, confidence: float = 0.95, unit: str = "Spearman rho") -> Effect:
    """The mean of per-seed rank correlations, with a Student-t interval on Fisher's z = atanh(rho), mapped
    back with tanh, so that it stays in [-1, 1]. Seeds count as replicates only if each had its own
    pre-training (`replicated`); otherwise the effect cannot decide a condition."""
    rho = np.clip(np.asarray(list(rhos), dtype=float), -0.999, 0.999)  # |rho| = 1 has z = inf
    z = mean_effect(np.arctanh(rho), confidence)
    reason = "" if replicated else ("every seed fine-tunes the same pre-training checkpoint per method: one "
                                    "replicate, not independent seeds")
    return Effect(float(np.tanh(z.estimate)), float(np.tanh(z.ci_low)), float(np.tanh(z.ci_high)), z.n, unit,
                  untestable=reason)


def selector(arm: str, **where) -> dict:
    """An arm in a cell, as an effect names it: plain Python values (findings.json is JSON)."""
    return {"arm": arm, **{k: (v.item() if hasattr(v, "item") else v) for k, v in where.items()}}


CONTEXT = ("experiment", "world", "task", "schedule")  # columns that tell apart arms of one name (HE-3: its best schedule)


def arm_selector(final: pd.DataFrame, arm: str, **where) -> dict:
    """selector() for an arm of `final`, with the context columns its rows agree on (ND-1's rotation runs and
    ND-3's share a name; their `world` tells them apart)."""
    rows = arm_rows(final, arm, **where)
    context = {c: rows[c].iloc[0] for c in CONTEXT if c in rows.columns and c not in where and len(rows)
               and rows[c].nunique(dropna=False) == 1 and pd.notna(rows[c].iloc[0])}
    return selector(arm, **where, **context)


def with_arms(effect: Effect, arms, differences=None) -> Effect:
    """The effect with the arms it compares; `differences` (its per-seed values) all exactly 0 mark the
    compared arms as one run (without them, the effect's own mark stands)."""
    marked = {} if differences is None else {"same_runs": all_zero(differences)}
    return replace(effect, arms=tuple(arms), **marked)


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


def one_sided_p(effect: Effect, op: str, value: float) -> tuple[float, float]:
    """(p that the condition holds, p that it is violated), one-sided paired t, from the effect's 95% CI.
    For |effect| <= value the two one-sided tests (TOST): it holds if both sides do."""
    if effect.n < 2 or not math.isfinite(effect.ci_high - effect.ci_low):
        return 0.5, 0.5
    se = standard_error(effect)
    if se == 0:  # every seed alike: the interval is a point, and decides as it does alone
        status = condition_status(effect, op, value)
        return float(status != "met"), float(status != "failed")
    # The p-value of "the effect is above bound", and of "below bound".
    above = lambda bound: float(stats.t.sf((effect.estimate - bound) / se, effect.n - 1))
    below = lambda bound: float(stats.t.cdf((effect.estimate - bound) / se, effect.n - 1))
    if op == ">":
        return above(value), below(value)
    if op == "<":
        return below(value), above(value)
    return max(above(-value), below(value)), min(above(value), below(-value))


def holm_statuses(tests: list[tuple[Effect, str, float]], alpha: float = 0.025) -> list[str]:
    """met / failed / undecided for a family of conditions, Holm-adjusted (one-sided `alpha` per direction, the
    level of a two-sided 95% CI): step down through the p-values that a condition holds, and separately
    through those that it is violated."""
    ps = [one_sided_p(*test) for test in tests]

    def rejected(pvalues: list[float]) -> set[int]:
        out = set()
        for k, i in enumerate(sorted(range(len(pvalues)), key=pvalues.__getitem__)):
            if pvalues[i] > alpha / (len(pvalues) - k):
                break
            out.add(i)
        return out

    met, failed = rejected([p[0] for p in ps]), rejected([p[1] for p in ps])
    return ["met" if i in met else "failed" if i in failed else "undecided" for i in range(len(tests))]


def verdict(statuses: list[str]) -> str:
    """The verdict from the conditions' statuses (met, failed, undecided, not tested), in the precedence of
    the module's docstring."""
    if "failed" in statuses:
        return "not reproduced"
    if statuses and all(s == "met" for s in statuses):
        return "reproduced"
    if "not tested" in statuses:
        return "not tested"
    return "inconclusive"


def power(effect: Effect, op: str, value: float, alpha: float = 0.05, max_seeds: int = 10_000) -> dict:
    """For an undecided condition: the minimum detectable effect at the observed spread (two-sided `alpha`,
    power POWER, paired t), and the seeds that would decide the margin (the distance from the estimate to the
    criterion's boundary) at that spread; None where no number of seeds would."""
    n = effect.n
    if n < 2 or not math.isfinite(effect.ci_high - effect.ci_low):
        return dict(mde=None, seeds_needed=None)
    sd = standard_error(effect) * math.sqrt(n)
    factor = lambda m: (stats.t.ppf(1 - alpha / 2, m - 1) + stats.t.ppf(POWER, m - 1)) / math.sqrt(m)
    mde = factor(n) * sd
    distance = abs(abs(effect.estimate) - value) if op == "abs<=" else abs(effect.estimate - value)
    seeds = next((m for m in range(2, max_seeds + 1) if factor(m) * sd <= distance), None) if distance > 0 else None
    return dict(mde=float(mde), seeds_needed=seeds)


def judge(finding_id: str, claim: str, criterion: dict, effects: dict[str, Effect], paper: str,
          profile: str) -> dict:
    """One findings.json entry: the pre-registered criterion, every effect it names, and the verdict on
    the effects alone; verdicts.apply_gates then marks the conditions whose arms failed a gate. A criterion
    with `adjust: holm` judges its conditions as one Holm-adjusted family (ZO-3's many cells)."""
    conditions = []
    for cond in criterion["conditions"]:
        if cond["effect"] not in effects:
            raise KeyError(f"{finding_id}: criterion names effect {cond['effect']!r}, computed: {sorted(effects)}")
    tests = [(effects[c["effect"]], c["op"], c["value"]) for c in criterion["conditions"]]
    statuses = holm_statuses(tests) if criterion.get("adjust") == "holm" else [condition_status(*t) for t in tests]
    for cond, status in zip(criterion["conditions"], statuses):
        effect = effects[cond["effect"]]
        conditions.append({**cond, **asdict(effect), "arms": list(effect.arms), "status": status, "tested": True,
                           **(power(effect, cond["op"], cond["value"]) if status == "undecided" else {})})
    primary = effects[criterion.get("primary", criterion["conditions"][0]["effect"])]
    return {
        "id": finding_id,
        "claim": claim,
        "criterion": criterion,
        "effect": {k: getattr(primary, k) for k in ("estimate", "ci_low", "ci_high", "unit")},
        "conditions": conditions,
        "n_seeds": min(e.n for e in effects.values()),
        "paper": paper,
        "profile": profile,
        "verdict": verdict([c["status"] for c in conditions]),
    }


def apply_gates(finding: dict, gates: pd.DataFrame) -> dict:
    """The finding with each condition judged only on arms that passed their validity gates: a condition
    whose arms failed a gate (or whose two arms are one run, or whose effect cannot decide it) is `not
    tested`, never `failed`; the entry lists every compared arm's gates and the verdict is recomputed."""
    from .gates import arm_gates

    arms, conditions = {}, []
    for cond in finding["conditions"]:
        failures = []
        for sel in cond["arms"]:
            key = json.dumps(sel, sort_keys=True)
            arms.setdefault(key, arm_gates(gates, sel) if gates is not None and len(gates) else [])
            failures += [g for g in arms[key] if not g["passed"]]
        reasons = [f"{arm_text(g['arm'])}: {g['gate']} failed ({g['note'] or _value_text(g)})" for g in failures]
        if cond.get("same_runs"):
            reasons.append("distinct failed: the compared arms are one and the same run (every difference is 0)")
        if cond.get("untestable"):
            reasons.append(cond["untestable"])
        entry = {**cond, "status": cond["status"] if not reasons else "not tested", "tested": not reasons,
                 "not_tested_because": reasons}
        if entry["status"] != "undecided":  # power speaks only to conditions that more seeds could decide
            entry.pop("mde", None), entry.pop("seeds_needed", None)
        conditions.append(entry)
    gates_list = [g for entries in arms.values() for g in entries]
    return {**finding, "conditions": conditions, "gates": gates_list,
            "verdict": verdict([c["status"] for c in conditions])}


def arm_text(sel: dict) -> str:
    """An arm selector in words: "scratch (aug=S4, label_fraction=1)"."""
    cell = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sel.items() if k != "arm")
    return sel["arm"] + (f" ({cell})" if cell else "")


def _value_text(g: dict) -> str:
    return f"{g['value']:.3g} against {g['threshold']:.3g}" if g["value"] is not None and g["threshold"] is not None \
        else "no value"


# Each task's headline metric, and the unit of every metric once turned into points.
TASK_METRIC = {"classify": "accuracy", "segment": "miou", "detect": "AP", "pose": "pose_accuracy"}
METRIC_UNITS = {"accuracy": "accuracy points", "miou": "mIoU points", "AP": "AP points", "AP50": "AP50 points",
                "AP75": "AP75 points", "pose_accuracy": "pose accuracy points"}


def final_metric(results: pd.DataFrame, metric: str, split: str = "val") -> pd.DataFrame:
    """The last evaluation of each run: one row per (arm, schedule, seed)."""
    rows = results[(results.metric == metric) & (results.split == split)]
    return rows.loc[rows.groupby("run_id").step.idxmax()]


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


def gap(final: pd.DataFrame, a: str, b: str, metric: str, **where) -> Effect:
    """Arm a minus arm b, paired by seed, over the rows matching `where`."""
    effect = paired_effect(seed_values(final, a, **where), seed_values(final, b, **where), unit=METRIC_UNITS[metric])
    return replace(effect, arms=(arm_selector(final, a, **where), arm_selector(final, b, **where)))


def seed_gaps(final: pd.DataFrame, a: str, b: str, **where) -> dict[int, float]:
    """seed -> arm a minus arm b, over the rows matching `where`."""
    return paired_differences(seed_values(final, a, **where), seed_values(final, b, **where))


def finding(claims: dict, finding_id: str, text: str, conditions: list[dict], effects: dict[str, Effect],
            profile: str, figure: str | None = None, panel: str | None = None, primary: str | None = None,
            adjust: str | None = None) -> dict:
    """A findings.json entry for a finding of a paper's `claims` (its CLAIMS table), judged against its
    pre-registered conditions (`adjust="holm"`: as one Holm-adjusted family)."""
    criterion = dict(text=text, conditions=conditions, primary=primary or conditions[0]["effect"],
                     **({"adjust": adjust} if adjust else {}))
    entry = judge(finding_id, claims[finding_id]["claim"], criterion, effects, claims[finding_id]["paper"], profile)
    paper_effect = claims[finding_id].get("paper_effect")  # the paper's effect in our unit, set beside ours
    return {**entry, "figure": figure, **({"panel": panel} if panel else {}),
            **({"paper_effect": paper_effect} if paper_effect else {})}


def untested_finding(claims: dict, finding_id: str, text: str, conditions: list[dict], unit: str, reason: str,
                     profile: str, figure: str | None = None, arms: tuple = ()) -> dict:
    """A finding whose runs a profile does not make (cut for its budget, or too few tasks to compare): every
    condition `not tested`, for `reason`, with no effect to show; `arms` (those that did run) list their gates."""
    effects = {c["effect"]: Effect(math.nan, math.nan, math.nan, 0, unit, arms=tuple(arms), untestable=reason)
               for c in conditions}
    return finding(claims, finding_id, text, conditions, effects, profile, figure)


def require_member(name: str, value, allowed: list, allowed_name: str) -> None:
    """A criterion that names a cell of the grid must name one that runs: checked before any training."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} must be one of the {allowed_name} {list(allowed)}")


