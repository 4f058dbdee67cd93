import math

import pytest

from rethink.study.verdicts import Effect, condition_status, judge, mean_effect, paired_effect, verdict

CRITERION = {"text": "gap at 1x > 0 and |gap at 6x| <= 1",
             "conditions": [{"effect": "gap_1x", "op": ">", "value": 0.0},
                            {"effect": "gap_6x", "op": "abs<=", "value": 1.0}]}


def effects(gap_1x, gap_6x):
    return {"gap_1x": mean_effect(gap_1x, unit="points"), "gap_6x": mean_effect(gap_6x, unit="points")}


def test_reproduced():
    f = judge("HE-1", "claim", CRITERION, effects([5.0, 6.0, 5.5], [0.1, -0.1, 0.0]), "paper", "test")
    assert f["verdict"] == "reproduced"
    assert [c["status"] for c in f["conditions"]] == ["met", "met"]
    assert f["n_seeds"] == 3 and f["effect"]["unit"] == "points"


def test_not_reproduced_when_a_ci_lies_wholly_on_the_wrong_side():
    f = judge("HE-1", "claim", CRITERION, effects([5.0, 6.0, 5.5], [4.0, 4.2, 3.9]), "paper", "test")
    assert f["verdict"] == "not reproduced"
    assert f["conditions"][1]["status"] == "failed"


def test_inconclusive_when_the_ci_is_too_wide():
    f = judge("HE-1", "claim", CRITERION, effects([5.0, 6.0, 5.5], [3.0, -3.0, 0.5]), "paper", "test")
    assert f["verdict"] == "inconclusive"
    assert f["conditions"][1]["status"] == "undecided"


def test_t_interval_matches_a_hand_computation():
    e = mean_effect([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert e.estimate == pytest.approx(2.0)
    assert (e.ci_low, e.ci_high) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-5)


def test_paired_effect_uses_common_seeds():
    e = paired_effect({0: 5.0, 1: 7.0, 2: 9.0}, {0: 4.0, 1: 6.0, 3: 100.0})
    assert e.n == 2 and e.estimate == pytest.approx(1.0) and e.ci_low == pytest.approx(1.0)


def test_one_seed_is_never_conclusive():
    assert condition_status(mean_effect([3.0]), ">", 0.0) == "undecided"


@pytest.mark.parametrize("op,value,ci,status", [
    (">", 0, (0.5, 2), "met"), (">", 0, (-2, -0.5), "failed"), (">", 0, (-1, 1), "undecided"),
    ("<", 0, (-2, -0.5), "met"), ("<", 0, (0.5, 2), "failed"),
    ("abs<=", 1, (-0.5, 0.5), "met"), ("abs<=", 1, (1.5, 3), "failed"), ("abs<=", 1, (-3, -1.5), "failed"),
    ("abs<=", 1, (0.5, 1.5), "undecided")])
def test_condition_status(op, value, ci, status):
    assert condition_status(Effect(sum(ci) / 2, *ci, 3), op, value) == status


def test_verdict_values_and_bad_op():
    assert verdict(["met", "undecided"]) == "inconclusive"
    assert verdict([]) == "inconclusive"
    with pytest.raises(ValueError, match="criterion op"):
        condition_status(Effect(0, 0, 0, 3), "~", 1)
