"""Validity gates and the four verdicts, on constructed results."""
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rethink import config
from rethink.study import gates, nd, outputs, verdicts, zo
from rethink.study.verdicts import Effect

THRESHOLDS = config.load("default")["gates"]
ROOT = config.ROOT


def run_rows(run_id: str, arm: str, seed: int, accuracies, train_losses, kept_share=None, **cell) -> list[dict]:
    """A classification run's tidy rows: one evaluation per entry of `accuracies` (points), evenly spaced."""
    rows = []
    for i, (accuracy, loss) in enumerate(zip(accuracies, train_losses)):
        step = (i + 1) * 100
        rows += [dict(run_id=run_id, arm=arm, seed=seed, step=step, epoch=step / 10, split="val", metric="accuracy",
                      value=accuracy, **cell),
                 dict(run_id=run_id, arm=arm, seed=seed, step=step, epoch=step / 10, split="train", metric="loss",
                      value=loss, **cell)]
    if kept_share is not None:
        rows.append(dict(run_id=run_id, arm=arm, seed=seed, step=step, epoch=step / 10, split="pseudo",
                         metric="kept_share", value=kept_share, **cell))
    return rows


def gate_of(table: pd.DataFrame, run_id: str, gate: str) -> pd.Series:
    return table[(table.run_id == run_id) & (table.gate == gate)].iloc[0]


def test_learned_and_converged_gates():
    flat = [80, 85, 88, 90.2, 90.4, 90.5]
    results = pd.DataFrame(
        run_rows("good", "pretrained", 0, flat, [1.0, 0.6, 0.4, 0.3, 0.3, 0.3])
        + run_rows("chance", "scratch", 0, [10, 11, 10, 9, 10, 10], [math.log(10)] * 6)
        + run_rows("rising", "scratch", 1, [20, 40, 60, 70, 80, 90], [2, 1.5, 1, 0.8, 0.6, 0.5])
        + run_rows("short", "scratch", 2, [80, 90], [0.5, 0.3])
        + run_rows("augmented", "scratch", 3, flat, [2.1] * 6))  # high train loss under strong augmentation
    table = gates.run_gates(results, THRESHOLDS, n_classes=10)
    assert gate_of(table, "good", "learned").passed and gate_of(table, "good", "converged").passed
    chance = gate_of(table, "chance", "learned")
    assert not chance.passed and chance.value == pytest.approx(math.log(10))
    assert chance.threshold == pytest.approx(0.8 * math.log(10))
    assert gate_of(table, "augmented", "learned").passed  # its accuracy is far above chance
    rising = gate_of(table, "rising", "converged")
    assert not rising.passed and rising.value == pytest.approx(20)  # 70 -> 90 over the last third
    short = gate_of(table, "short", "converged")
    assert not short.passed and "2 evaluations < 6" in short.note


def test_converged_gate_reads_the_evaluations_after_the_last_lr_drop():
    """He et al.'s drops inside the last third: the jump at each drop is no failure to converge, but a run needs
    two evaluations after its last drop, and one still moving there fails."""
    def run(run_id, aps, lrs):
        steps = [100 * (i + 1) for i in range(len(aps))]
        return ([dict(run_id=run_id, arm=run_id, seed=0, step=s, epoch=s, split="val", metric="AP", value=v)
                 for s, v in zip(steps, aps)]
                + [dict(run_id=run_id, arm=run_id, seed=0, step=s, epoch=s, split="train", metric="lr", value=v)
                   for s, v in zip(steps, lrs)])
    lrs = [0.05] * 5 + [0.005, 0.0005, 0.0005]
    table = gates.run_gates(pd.DataFrame(run("settled", [10, 15, 18, 20, 22, 28, 33, 33.4], lrs)
                                         + run("moving", [10, 15, 18, 20, 22, 28, 31, 33], lrs)
                                         + run("one after", [10, 15, 18, 20, 22, 24, 28, 33], [0.05] * 7 + [0.005])
                                         + run("no lr rows", [10, 15, 18, 20, 22, 28, 33, 33.4], [])),
                            THRESHOLDS, n_classes=10, task="detect")
    settled = gate_of(table, "settled", "converged")
    assert settled.passed and settled.value == pytest.approx(0.4) and "after the last LR drop" in settled.note
    assert not gate_of(table, "moving", "converged").passed
    one = gate_of(table, "one after", "converged")
    assert not one.passed and "1 evaluation(s)" in one.note
    assert gate_of(table, "no lr rows", "converged").value == pytest.approx(33.4 - 28)  # the whole last third


def test_detection_learned_gate_is_an_ap_floor():
    rows = [dict(run_id=r, arm=r, seed=0, step=s, epoch=s, split="val", metric="AP", value=v)
            for r, v in (("trained", 30.0), ("untrained", 0.4)) for s in range(1, 7)]
    table = gates.run_gates(pd.DataFrame(rows), THRESHOLDS, n_classes=10, task="detect")
    assert gate_of(table, "trained", "learned").passed and not gate_of(table, "untrained", "learned").passed


def test_self_training_gate_and_pretraining_gate():
    results = pd.DataFrame(run_rows("student", "scratch+ST", 0, [90] * 6, [0.3] * 6, kept_share=0.05))
    table = gates.run_gates(results, THRESHOLDS, n_classes=10)
    kept = gate_of(table, "student", "self_training")
    assert not kept.passed and kept.value == 0.05 and "5%" in kept.note

    checkpoints = pd.DataFrame([
        dict(checkpoint="rotation", metric="loss", value=1.0), dict(checkpoint="rotation", metric="nn_accuracy", value=0.6),
        dict(checkpoint="swav", metric="loss", value=math.log(32)), dict(checkpoint="swav", metric="nn_accuracy", value=0.3),
        dict(checkpoint="autoencoder", metric="loss", value=0.01),
        dict(checkpoint="autoencoder", metric="nn_accuracy", value=0.05)])  # reconstructs well, features below chance
    kinds = {m: dict(method=m, options={"prototypes": 32}, batch_size=256) for m in ("rotation", "swav", "autoencoder")}
    result = gates.checkpoint_gates(checkpoints, kinds, THRESHOLDS, n_upstream_classes=10)
    assert result["rotation"]["passed"]
    assert not result["swav"]["passed"] and result["swav"]["threshold"] == pytest.approx(0.9 * math.log(32))
    assert not result["autoencoder"]["passed"] and "no chance loss" in result["autoencoder"]["note"]


def test_the_verdicts_precedence():
    assert verdicts.verdict(["met", "failed", "not tested"]) == "not reproduced"
    assert verdicts.verdict(["met", "met"]) == "reproduced"
    assert verdicts.verdict(["met", "not tested", "undecided"]) == "not tested"
    assert verdicts.verdict(["met", "undecided"]) == "inconclusive"
    assert set(verdicts.VERDICTS) == {"reproduced", "not reproduced", "not tested", "inconclusive"}


def zo_results(cells: dict, **extra) -> pd.DataFrame:
    """ZO-shaped results: (arm, aug, fraction) -> accuracy, three seeds, six flat evaluations, trained."""
    rows = []
    for (arm, aug, fraction), value in cells.items():
        for seed, noise in enumerate((0.0, 0.3, -0.2)):
            run_id = f"{arm} {aug} {fraction} {seed}"
            rows += run_rows(run_id, arm, seed, [value + noise] * 6, [0.3] * 6, aug=aug, label_fraction=fraction,
                             **extra.get(arm, {}))
    return pd.DataFrame(rows)


def test_a_student_identical_to_its_teacher_is_not_tested_never_failed():
    cells = {(arm, "S1", 1.0): 80 for arm in ("scratch", "scratch+ST", "pretrained", "pretrained+ST")}
    results = zo_results(cells)
    finding = zo.zo3_finding(results, 0.0, "test")
    assert {c["status"] for c in finding["conditions"]} == {"failed"}  # on the effects alone: exactly 0, not > 0
    gated = verdicts.apply_gates(finding, gates.run_gates(results, THRESHOLDS, 10))
    assert gated["verdict"] == "not tested"
    assert all(c["status"] == "not tested" and "one and the same run" in c["not_tested_because"][-1]
               for c in gated["conditions"])


def test_a_chance_level_arm_makes_its_condition_not_tested():
    cells = {("scratch", "S1", 1.0): 90, ("pretrained", "S1", 1.0): 92, ("scratch", "S4", 1.0): 10,
             ("pretrained", "S4", 1.0): 85, ("scratch", "S1", 0.2): 80, ("pretrained", "S1", 0.2): 88,
             ("scratch", "S4", 0.2): 10, ("pretrained", "S4", 0.2): 80}
    results = zo_results(cells)
    at_chance = results.arm.eq("scratch") & results.aug.eq("S4") & results.metric.eq("loss")
    results.loc[at_chance, "value"] = math.log(10)
    finding = zo.zo1_finding(results, 0.0, 0.0, "test")
    assert finding["verdict"] == "not reproduced"  # what the numbers alone would say: pre-training helps a lot at S4
    gated = verdicts.apply_gates(finding, gates.run_gates(results, THRESHOLDS, 10))
    assert gated["verdict"] == "not tested"
    assert all(c["status"] != "failed" for c in gated["conditions"])
    reasons = " ".join(r for c in gated["conditions"] for r in c["not_tested_because"])
    assert "scratch (aug=S4, label_fraction=1): learned failed" in reasons
    failed = [g for g in gated["gates"] if not g["passed"]]
    assert failed and all(g["arm"]["arm"] == "scratch" and g["arm"]["aug"] == "S4" for g in failed)


def test_power_matches_a_hand_computation():
    # Three seeds with sample sd 1: CI half-width t(0.975, 2) / sqrt(3).
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    effect = Effect(0.5, 0.5 - half, 0.5 + half, 3, "points")
    result = verdicts.power(effect, ">", -0.5)
    # (t(0.975, 2) + t(0.8, 2)) * sd / sqrt(3) = (4.3027 + 1.0607) / 1.7321 = 3.0965
    assert result["mde"] == pytest.approx(3.0965, abs=1e-4)
    # The margin is 1 point away: (t(0.975, n-1) + t(0.8, n-1)) / sqrt(n) <= 1 first at n = 10
    # (n = 9: (2.306 + 0.889) / 3 = 1.065; n = 10: (2.262 + 0.883) / 3.162 = 0.995).
    assert result["seeds_needed"] == 10
    assert verdicts.power(Effect(-0.5, -0.5 - half, -0.5 + half, 3), ">", -0.5)["seeds_needed"] is None  # on the margin


def test_an_undecided_condition_states_its_power_and_no_other_does():
    cells = {("scratch", "S1", 1.0): 80, ("scratch+ST", "S1", 1.0): 80.1}
    results = zo_results(cells)
    results.loc[results.arm.eq("scratch+ST") & results.seed.eq(1) & results.metric.eq("accuracy"), "value"] += 2
    finding = verdicts.apply_gates(zo.zo3_finding(results, 0.0, "test"),
                                   gates.run_gates(results, THRESHOLDS, 10))
    (condition,) = finding["conditions"]
    assert finding["verdict"] == "inconclusive" and condition["mde"] > 0 and condition["seeds_needed"] > 3


@pytest.mark.parametrize("rhos", [[1.0, 1.0, 1.0], [0.9, 1.0, -0.5], [-1.0, -0.99, 0.2], [0.5]])
def test_a_rank_correlation_interval_stays_in_minus_one_one(rhos):
    effect = verdicts.rank_effect(rhos, replicated=True)
    assert -1 <= effect.ci_low <= effect.estimate <= effect.ci_high <= 1 or len(rhos) == 1
    assert -1 <= effect.estimate <= 1


def test_holm_decides_a_family_more_strictly_than_its_members():
    # Each condition's own 95% interval clears 0, two only just (one-sided p = 0.022 each): Holm's second step
    # asks for p < 0.025 / 2, and stops there.
    tests = [(Effect(e, e - 1.0, e + 1.0, 5), ">", 0.0) for e in (5.0, 1.05, 1.05)]
    assert [verdicts.condition_status(*t) for t in tests] == ["met", "met", "met"]
    assert verdicts.holm_statuses(tests) == ["met", "undecided", "undecided"]
    assert verdicts.holm_statuses([(Effect(-5.0, -6.0, -4.0, 5), ">", 0.0)]) == ["failed"]


def test_deviations_are_recorded_and_reach_the_findings(tmp_path):
    from rethink.study.outputs import write_findings

    deviations = config.load("default")["deviations"]
    assert {d["findings"][0] for entries in deviations.values() for d in entries} >= {"HE-1", "HE-4", "ZO-5", "BL-1"}
    finding = {"id": "HE-4", "conditions": []}
    write_findings(str(tmp_path), [finding], deviations=deviations["03_he4_normalization"])
    written = pd.read_json(tmp_path / "findings.json").iloc[0]
    assert written["deviations"][0]["earlier_reports"] == "0250517"  # a commit, quoted: not an octal number
    assert np.isfinite(len(written["deviations"]))


def test_the_summary_opens_each_report_with_verdict_effects_gates_and_figure():
    cells = {("pretrained", "S1", 0.2): 80.0, ("pretrained+joint", "S1", 0.2): 81.0,
             ("pretrained+joint+ST", "S1", 0.2): 82.5}
    results = zo_results(cells)
    finding = verdicts.apply_gates(zo.zo5_finding(results, "S1", 0.2, 0.0, "test", figure="zo5.png"),
                                   gates.run_gates(results, THRESHOLDS, 10))
    deviation = dict(findings=["ZO-5"], change="redefined | now additive", reason="r", earlier_reports="none")
    summary = outputs.summary_markdown([finding], [deviation])
    header, rule, row = summary.splitlines()
    assert header.count("|") == rule.count("|") == row.count("|") - row.count("\\|")  # the pipe is escaped
    assert "**ZO-5**" in row and "reproduced</b></span>" in row and "white-space:nowrap" in row
    assert "+1.00 [+1.00, +1.00] accuracy points (joint_minus_pretrained, 3 seeds)" in row
    assert zo.CLAIMS["ZO-5"]["paper_effect"] in row and "[zo5.png](zo5.png)" in row
    assert f"all {len(finding['gates'])} passed" in row and "redefined \\| now additive" in row
    # A finding whose runs a profile cut has no effect: its cells say so, not "+nan".
    cut = verdicts.apply_gates(nd.nd2_finding(pd.DataFrame(dict(arm=["scratch"], label_count=[100], seed=[0],
                                                                value=[40.0])), "rotation", "big", 0.0, 0.0, "test"), None)
    for text in (outputs.summary_markdown([cut]), outputs.verdict_markdown([cut])):
        assert "nan" not in text and "— (not measured) accuracy points" in text


def test_the_index_names_code_that_changed_since_a_report_was_made():
    from rethink.report.index import changed_since

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], capture_output=True, text=True,
                           cwd=ROOT).stdout.split()[0]
    assert changed_since(head, "04_zo1_zo2_augmentation_data") == ""
    if first == head:
        pytest.skip("a clone with one commit: nothing older to compare")
    assert "lib/rethink" in changed_since(first, "04_zo1_zo2_augmentation_data")
    assert changed_since("not-a-commit", "04_zo1_zo2_augmentation_data") == ""  # git cannot tell: no line
