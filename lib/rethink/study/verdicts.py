"""Verdicts under protocol v2 (docs/protocol.md): each finding's pre-registered conditions judged on its effects.

A criterion (config/protocol.yaml's `criteria`, fixed before the runs) is a list of conditions on named effects, one of
them primary. A condition against 0 is a directional claim and carries delta, the smallest effect of interest (the
paper's own effect where it reports one); a condition against any other value is a bound (a margin), kept as it is.
Each condition is judged on its effect's 95% confidence interval; for a claim theta > 0 (mirror for < 0):
  met        the whole interval is > 0,
  failed     otherwise, when the whole interval is < delta: any effect in the claimed direction is smaller than
             the smallest the paper reports (a bound fails when the whole interval violates it),
  undecided  otherwise: the minimum detectable effect and the seeds that would decide it are reported.
The primary condition is judged at 95%; the secondary ones are Holm-adjusted within their finding, shown with
their own status, and never change the verdict. Only arms that passed their validity gates count
(rethink.study.gates.apply_gates): a condition whose arms failed one, or that cannot decide for another true
reason (`because`), is `not tested`. The verdict is the primary condition's:
  reproduced (met), not reproduced (failed), not tested (with its reason), inconclusive (undecided).
"""
from __future__ import annotations

import math
from dataclasses import asdict

from scipy import stats

from .effects import Effect

VERDICTS = ("reproduced", "not reproduced", "not tested", "inconclusive")
STATUS_VERDICT = {"met": "reproduced", "failed": "not reproduced", "not tested": "not tested",
                  "undecided": "inconclusive"}
OPS = (">", "<", "abs<=")
ALPHA = 0.05       # two-sided, the level of a 95% interval
POWER = 0.8        # the minimum detectable effect: two-sided 5%, power 80%
SD_BOUND = 0.8     # the seed plan reads the sd at its upper 80% confidence bound too
MAX_SEEDS = 10_000


def directional(condition: dict) -> bool:
    """A condition that carries delta claims a direction against 0; any other is a bound (a margin)."""
    return condition.get("delta") is not None


def _boundaries(condition: dict) -> tuple[float, float]:
    """(the value the interval must clear to meet the condition, the one beyond which it fails), on the scale of
    the effect. A directional claim fails short of value + delta (mirror for <); a bound where it is violated."""
    op, value, delta = condition["op"], condition["value"], condition.get("delta") or 0.0
    if op == ">":
        return value, value + delta
    if op == "<":
        return value, value - delta
    if op == "abs<=":
        return value, value
    raise ValueError(f"criterion op must be one of {', '.join(OPS)}; got {op!r}")


def condition_status(effect: Effect, condition: dict) -> str:
    """met / failed / undecided from the effect's 95% interval (the module's docstring)."""
    lo, hi = effect.ci_low, effect.ci_high
    op, meet, fail = condition["op"], *_boundaries(condition)
    strict = directional(condition)  # a bound fails when the interval touches nothing allowed; delta is exclusive
    if op == ">":
        return "met" if lo > meet else "failed" if (hi < fail if strict else hi <= fail) else "undecided"
    if op == "<":
        return "met" if hi < meet else "failed" if (lo > fail if strict else lo >= fail) else "undecided"
    if -meet <= lo and hi <= meet:
        return "met"
    return "failed" if hi < -meet or lo > meet else "undecided"


def _z(effect: Effect, x: float) -> float:
    """x on the scale the effect's interval is built on (Fisher's z for rank correlations)."""
    return float(math.atanh(min(max(x, -0.999), 0.999))) if effect.scale == "fisher_z" else x


def one_sided_p(effect: Effect, condition: dict) -> tuple[float, float]:
    """(p that the condition holds, p that it fails), one-sided t tests against the boundaries of _boundaries,
    from the effect's standard error and degrees of freedom. For |effect| <= value, two one-sided tests (TOST)."""
    if effect.n < 2 or not math.isfinite(effect.se) or effect.se == 0:
        status = condition_status(effect, condition)  # no spread: the interval decides as it does alone
        return float(status != "met"), float(status != "failed")
    estimate = _z(effect, effect.estimate)
    above = lambda bound: float(stats.t.sf((estimate - _z(effect, bound)) / effect.se, effect.df))
    below = lambda bound: float(stats.t.cdf((estimate - _z(effect, bound)) / effect.se, effect.df))
    op, meet, fail = condition["op"], *_boundaries(condition)
    if op == ">":
        return above(meet), below(fail)
    if op == "<":
        return below(meet), above(fail)
    return max(above(-meet), below(meet)), min(above(meet), below(-meet))


def holm_statuses(tests: list[tuple[Effect, dict]], alpha: float = ALPHA / 2) -> list[str]:
    """met / failed / undecided for a family of conditions, Holm-adjusted (one-sided `alpha` per direction, the
    level of a two-sided 95% CI): step down through the p-values that a condition holds, and separately through
    those that it fails. One condition alone is judged as by its 95% interval."""
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


def target(condition: dict) -> float:
    """The effect a condition's power is planned for: delta for a directional claim; for a bound, its distance
    from 0 (the margin of |gap| <= m or of non-inferiority > -m, a correlation's bound), the effect the paper
    claims being about 0 there."""
    return condition["delta"] if directional(condition) else abs(condition["value"])


def _factor(seeds: int) -> float:
    """(t_{1-alpha/2} + t_{power}) / sqrt(n): the minimum detectable effect per unit of per-seed sd."""
    return (stats.t.ppf(1 - ALPHA / 2, seeds - 1) + stats.t.ppf(POWER, seeds - 1)) / math.sqrt(seeds)


def seeds_for(sd: float, effect_size: float) -> int | None:
    """The fewest seeds whose minimum detectable effect at per-seed sd `sd` is at most `effect_size`."""
    if not (math.isfinite(sd) and effect_size > 0):
        return None
    if sd == 0:
        return 2
    return next((m for m in range(2, MAX_SEEDS + 1) if _factor(m) * sd <= effect_size), None)


def power(effect: Effect, condition: dict) -> dict:
    """The effect's per-seed sd (and its upper 80% confidence bound, from chi-square), the minimum detectable
    effect at its seeds (two-sided 5%, power 80%), and the seeds at which that reaches the condition's target
    (delta, or a bound's margin) at the observed sd and at its upper bound. None where one seed gives no spread."""
    if effect.n < 2 or not math.isfinite(effect.se):
        return dict(target=target(condition), sd=None, sd_upper=None, mde=None, seeds_needed=None,
                    seeds_needed_upper=None)
    sd = effect.se * math.sqrt(effect.n)
    sd_upper = sd * math.sqrt(effect.df / stats.chi2.ppf(1 - SD_BOUND, effect.df))
    goal = abs(_z(effect, target(condition)))  # a correlation's sd is on Fisher's z: so is its target
    return dict(target=target(condition), sd=sd, sd_upper=sd_upper, mde=_factor(effect.n) * sd,
                seeds_needed=seeds_for(sd, goal), seeds_needed_upper=seeds_for(sd_upper, goal))


def primary_condition(conditions: list[dict]) -> dict:
    """The one condition marked primary (config/study.yaml's schema requires exactly one)."""
    primary = [c for c in conditions if c.get("primary")]
    if len(primary) != 1:
        raise ValueError(f"a criterion needs exactly one primary condition; got {len(primary)} in "
                         f"{[c['name'] for c in conditions]}")
    return primary[0]


def judge(conditions: list[dict], effects: dict[str, Effect]) -> list[dict]:
    """Each condition with its effect, its status (the primary at 95%, the others Holm-adjusted among
    themselves) and its power."""
    missing = [c["name"] for c in conditions if c["name"] not in effects]
    if missing:
        raise KeyError(f"the criterion names effects {missing} that were not computed; computed: {sorted(effects)}")
    primary = primary_condition(conditions)
    secondary = [c for c in conditions if c is not primary]
    statuses = dict(zip((c["name"] for c in secondary), holm_statuses([(effects[c["name"]], c) for c in secondary])))
    statuses[primary["name"]] = condition_status(effects[primary["name"]], primary)
    out = []
    for cond in conditions:
        effect = effects[cond["name"]]
        out.append({**cond, "primary": cond is primary, **asdict(effect), "arms": list(effect.arms),
                    "because": list(effect.because), "status": statuses[cond["name"]], "tested": True,
                    "power": power(effect, cond)})
    return out


def finding(claims: dict, finding_id: str, criterion: dict, effects: dict[str, Effect], labels: dict[str, str],
            profile: str, figure: str | None = None, panel: str | None = None, **info) -> dict:
    """A findings.json entry for a finding of a paper's `claims` (its CLAIMS table), judged against its
    pre-registered `criterion` (config/protocol.yaml: its conditions, one primary). `labels` name each effect in
    words ("pretrained − scratch AP at 6x"); `info` adds what is shown beside the verdict, not judged."""
    text = criterion_text(criterion["conditions"], labels)
    conditions = [{**c, "label": labels.get(c["name"], c["name"])} for c in judge(criterion["conditions"], effects)]
    primary = next(c for c in conditions if c["primary"])
    claim = claims[finding_id]
    return {
        "id": finding_id, "claim": claim["claim"], "paper": claim["paper"],
        **({"paper_effect": claim["paper_effect"]} if claim.get("paper_effect") else {}),
        "profile": profile,
        "criterion": {"text": text, "primary": primary["name"]},
        "effect": {k: primary[k] for k in ("estimate", "ci_low", "ci_high", "unit")},
        "conditions": conditions,
        "n_seeds": min(e.n for e in effects.values()),
        "verdict": STATUS_VERDICT[primary["status"]],
        "figure": figure, **({"panel": panel} if panel else {}), **info,
    }


def untested_finding(claims: dict, finding_id: str, criterion: dict, labels: dict[str, str], unit: str, reason: dict,
                     profile: str, figure: str | None = None, arms: tuple = ()) -> dict:
    """A finding whose runs a profile does not make (cut for its budget, or too few tasks to compare): every
    condition `not tested` for `reason` (not_run, not_replicated), with no effect to show; `arms` (those that did
    run) list their gates."""
    effects = {c["name"]: Effect(math.nan, math.nan, math.nan, 0, unit, arms=tuple(arms), because=(reason,))
               for c in criterion["conditions"]}
    return finding(claims, finding_id, criterion, effects, labels, profile, figure)


def verdict_of(conditions: list[dict]) -> str:
    """The verdict: the primary condition's status in words."""
    return STATUS_VERDICT[next(c for c in conditions if c["primary"])["status"]]


def criterion_text(conditions: list[dict], labels: dict[str, str]) -> str:
    """The criterion in words with its values, from the config: each condition's effect, what it must be, and
    which is primary ("|pretrained − scratch AP at 6x| ≤ 2 (primary); pretrained − scratch AP at 1x > 0 (δ 3.5)")."""
    parts = []
    for c in conditions:
        label = labels.get(c["name"], c["name"])
        core = f"|{label}| ≤ {c['value']:g}" if c["op"] == "abs<=" else f"{label} {c['op']} {c['value']:g}"
        notes = (["primary"] if c.get("primary") else []) + ([f"δ {c['delta']:g}"] if directional(c) else [])
        parts.append(core + (f" ({', '.join(notes)})" if notes else ""))
    return "; ".join(parts) + " (95% CIs)"
