"""Protocol v2's verdict rules (rethink.study.verdicts, rethink.study.effects) on constructed effects, with expected
values computed by hand."""
import copy
import math

import pytest

from rethink import config
from rethink.study.effects import Effect, cells_mean_effect, mean_effect, paired_effect
from rethink.study.verdicts import (condition_status, finding, holm_statuses, judge, one_sided_p, power, seeds_for,
                                    target)

# Criteria as config/protocol.yaml writes them, with values chosen here (not the production config's).
GREATER = {"name": "gain", "op": ">", "value": 0.0, "delta": 1.0, "delta_source": "test"}
LESS = {"name": "drop", "op": "<", "value": 0.0, "delta": 1.0, "delta_source": "test"}
BOUND = {"name": "gap", "op": "abs<=", "value": 2.0}
CLAIMS = {"X-1": {"claim": "a claim", "paper": "a paper"}}


def ci(low, high, n=5) -> Effect:
    """An effect with a given 95% interval (its se from the t quantile, as mean_effect builds it)."""
    se = (high - low) / 2 / 2.776445  # t_{0.975, 4}
    return Effect((low + high) / 2, low, high, n, "points", se=se, df=n - 1)


@pytest.mark.parametrize("interval,status", [
    ((0.2, 3.0), "met"),            # wholly above 0: reproduced
    ((0.2, 0.8), "met"),            # above 0 though under delta: present, small (met first)
    ((-0.5, 0.8), "failed"),        # wholly under delta, not above 0: any effect is smaller than the paper's smallest
    ((-3.0, -0.5), "failed"),       # the wrong direction
    ((-0.5, 1.5), "undecided"),     # reaches past delta and below 0
    ((-0.5, 1.0), "undecided"),     # touching delta is not under it
])
def test_a_directional_claim_is_decided_against_0_and_delta(interval, status):
    assert condition_status(ci(*interval), GREATER) == status


@pytest.mark.parametrize("interval,status", [
    ((-3.0, -0.2), "met"), ((-0.8, 0.5), "failed"), ((0.5, 3.0), "failed"), ((-1.5, 0.5), "undecided")])
def test_the_mirror_claim_below_0(interval, status):
    assert condition_status(ci(*interval), LESS) == status


@pytest.mark.parametrize("interval,status", [
    ((-1.5, 1.5), "met"), ((2.5, 3.0), "failed"), ((-3.0, -2.5), "failed"), ((1.0, 2.5), "undecided")])
def test_a_bound_keeps_its_margin(interval, status):
    assert condition_status(ci(*interval), BOUND) == status
    noninferior = {"name": "ap75", "op": ">", "value": -1.0}
    assert condition_status(ci(-0.9, 2.0), noninferior) == "met"
    assert condition_status(ci(-3.0, -1.2), noninferior) == "failed"


def test_one_seed_is_never_conclusive():
    assert condition_status(mean_effect([3.0]), GREATER) == "undecided"


def test_the_t_interval_matches_a_hand_computation():
    e = mean_effect([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert e.estimate == pytest.approx(2.0) and e.se == pytest.approx(1 / math.sqrt(3)) and e.df == 2
    assert (e.ci_low, e.ci_high) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-5)


def test_paired_effect_uses_common_seeds():
    e = paired_effect({0: 5.0, 1: 7.0, 2: 9.0}, {0: 4.0, 1: 6.0, 3: 100.0})
    assert e.n == 2 and e.estimate == pytest.approx(1.0) and e.ci_low == pytest.approx(1.0)


def test_the_pooled_interval_wins_when_cells_anti_correlate():
    # Two cells whose gains move in opposite directions across seeds: every per-seed mean is 1.0.
    a, b = {0: 0.0, 1: 1.0, 2: 2.0}, {0: 2.0, 1: 1.0, 2: 0.0}
    e = cells_mean_effect([a, b], unit="points")
    # By hand: each cell's variance is 1 (n = 3); Var of the mean = (1/3 + 1/3) / 4 = 1/6; Satterthwaite
    # df = (1/6)^2 / (2 * (1/12)^2 / 2) = 4; half-width = t_{0.975, 4} * sqrt(1/6) = 2.776445 * 0.408248.
    assert e.interval == "pooled cell variances" and e.estimate == pytest.approx(1.0)
    assert e.df == pytest.approx(4.0) and e.se == pytest.approx(math.sqrt(1 / 6))
    assert e.ci_high - e.estimate == pytest.approx(2.776445 * math.sqrt(1 / 6), rel=1e-5)
    # Cells that agree: the per-seed means keep their own interval, the wider one.
    same = cells_mean_effect([{0: 0.0, 1: 1.0, 2: 5.0}, {0: 0.1, 1: 1.1, 2: 5.1}])
    assert same.interval == "per-seed means over cells" and same.df == 2


def test_seeds_needed_for_delta_against_a_hand_computation():
    # (t_{0.975, m-1} + t_{0.8, m-1}) / sqrt(m) * sd <= delta, sd 1, delta 1:
    # m = 10: (2.262157 + 0.883034) / 3.162278 = 0.9946 <= 1; m = 9: (2.306004 + 0.888951) / 3 = 1.0650 > 1.
    assert seeds_for(1.0, 1.0) == 10
    assert seeds_for(0.0, 1.0) == 2 and seeds_for(1.0, 0.0) is None
    # The upper 80% bound of an sd of 1 over 5 seeds: sqrt(4 / chi2_{0.2, 4}) = sqrt(4 / 1.648777).
    p = power(mean_effect([0.0, 2.0, 0.0, 2.0, 1.0]), GREATER)  # mean 1, sd 1
    assert p["sd"] == pytest.approx(1.0) and p["sd_upper"] == pytest.approx(math.sqrt(4 / 1.648777), rel=1e-5)
    assert p["seeds_needed"] == 10 and p["target"] == 1.0
    assert p["mde"] == pytest.approx((2.776445 + 0.940965) / math.sqrt(5), rel=1e-5)
    assert target(BOUND) == 2.0 and target({"name": "rho", "op": "<", "value": 0.5}) == 0.5


def test_holm_adjusts_the_secondary_conditions_of_a_finding():
    # Each weak condition alone is met at one-sided 0.025; as a family of two, Holm asks the smaller p-value to be
    # <= 0.025 / 2 first, then the other <= 0.025.
    strong = ci(0.5, 3.0, n=10)
    weak = Effect(1.0, 0.05, 1.95, 10, "points", se=0.42, df=9)  # p(theta <= 0) = t.sf(1 / 0.42, 9) = 0.0206
    assert one_sided_p(weak, GREATER)[0] == pytest.approx(0.02061, abs=2e-4)
    assert holm_statuses([(weak, GREATER)]) == ["met"]
    assert holm_statuses([(strong, GREATER), (weak, GREATER)]) == ["met", "met"]  # 0.0206 <= 0.025 at the second step
    weaker = Effect(1.0, 0.0, 2.0, 10, "points", se=0.44, df=9)  # p = 0.0245
    assert holm_statuses([(weaker, GREATER)]) == ["met"]
    assert holm_statuses([(weaker, GREATER), (weak, GREATER)]) == ["undecided", "undecided"]  # 0.0206 > 0.0125


def test_only_the_primary_condition_decides_the_verdict():
    criterion = {"conditions": [dict(GREATER, primary=True), dict(LESS)]}
    effects = {"gain": ci(0.5, 2.0), "drop": ci(0.5, 2.0)}  # the secondary condition fails
    entry = finding(CLAIMS, "X-1", criterion, effects, {"gain": "a gain", "drop": "a drop"}, "test")
    assert entry["verdict"] == "reproduced" and entry["criterion"]["primary"] == "gain"
    assert [c["status"] for c in entry["conditions"]] == ["met", "failed"]
    assert "a gain > 0 (primary, δ 1)" in entry["criterion"]["text"]
    effects["gain"] = ci(-0.5, 0.5)
    assert finding(CLAIMS, "X-1", criterion, effects, {}, "test")["verdict"] == "not reproduced"
    effects["gain"] = ci(-0.5, 3.0)
    assert finding(CLAIMS, "X-1", criterion, effects, {}, "test")["verdict"] == "inconclusive"


def test_judge_names_missing_effects_and_needs_one_primary():
    with pytest.raises(KeyError, match="drop"):
        judge([dict(GREATER, primary=True), LESS], {"gain": ci(0, 1)})
    with pytest.raises(ValueError, match="exactly one primary"):
        judge([GREATER, LESS], {"gain": ci(0, 1), "drop": ci(0, 1)})


def load_criteria():
    return config.raw()


@pytest.mark.parametrize("change,message", [
    (lambda c: c["criteria"]["HE-4"]["conditions"][0].pop("delta"), "'delta' is a required property"),
    (lambda c: c["criteria"]["HE-4"]["conditions"][0].pop("delta_source"), "'delta_source' is a required property"),
    (lambda c: c["criteria"]["HE-1"]["conditions"][1].update(primary=True), "exactly one condition must be `primary: true`; 2 are"),
    (lambda c: c["criteria"]["HE-1"]["conditions"][0].pop("primary"), "exactly one condition must be `primary: true`; 0 are"),
    (lambda c: c["criteria"]["HE-2"]["conditions"][0].update(delta=1.0, delta_source="x"), "0 was expected"),
])
def test_the_schema_rejects_a_directional_condition_without_delta_and_not_one_primary(change, message):
    settings = copy.deepcopy(load_criteria())
    change(settings)
    with pytest.raises(ValueError, match=message):
        config.resolve(settings, "default")


def test_the_exploration_record_in_docs_is_rendered_from_its_config():
    from rethink.report.index import exploration_markdown

    assert (config.ROOT / "docs" / "exploration.md").read_text() == exploration_markdown(config.exploration_record())
