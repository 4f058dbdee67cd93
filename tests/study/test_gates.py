"""Validity gates and the four verdicts, on constructed results."""
import math

import pandas as pd
import pytest
from scipy import stats

from rethink import config
from rethink.report.words import why_text
from rethink.report import pages, words
from rethink.study import effects, gates, nd, verdicts, zo
from rethink.study.effects import Effect

# Gate thresholds chosen for these tests, not read from the production config.
THRESHOLDS = dict(learned_loss_factor=0.8, learned_min_above_chance=10.0, learned_min_ap=5.0,
                  learned_min_pose_accuracy=30.0, min_evals=6, min_evals_after_drop=2, converged_tolerance=1.0,
                  pretext_factor=0.9, min_kept_share=0.1)
ROOT = config.ROOT


def directional(name, op=">", delta=1.0, primary=False):
    return dict(name=name, op=op, value=0.0, delta=delta, delta_source="test", primary=primary)


ZO2 = {"conditions": [directional("change_strongest", "<", primary=True), directional("gain_fewest")]}
ZO3 = {"conditions": [directional("student_gain", delta=1.3, primary=True)]}
ZO5 = {"aug": "S1", "label_fraction": 0.2,
       "conditions": [directional("joint_gain", primary=True), directional("selftraining_gain")]}


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


def task_rows(run_id: str, task: str, metric: str, values, loss: float) -> list[dict]:
    """A run of `task`: six evaluations of `metric` (points) on val, its train loss at each."""
    return [row for i, value in enumerate(values) for row in (
        dict(run_id=run_id, arm=run_id, seed=0, step=100 * (i + 1), epoch=i + 1, split="val", metric=metric,
             value=value, task=task),
        dict(run_id=run_id, arm=run_id, seed=0, step=100 * (i + 1), epoch=i + 1, split="train", metric="loss",
             value=loss, task=task))]


def test_segmentation_learns_below_its_loss_ceiling_with_background_as_a_class():
    """10 classes and background: the ceiling is 0.8 x ln 11 = 1.918 (not 0.8 x ln 10 = 1.842); a high mIoU does not
    excuse a loss above it (only classification's accuracy does)."""
    ceiling = 0.8 * math.log(11)
    table = gates.run_gates(pd.DataFrame(task_rows("under", "segment", "miou", [60] * 6, 1.90)
                                         + task_rows("over", "segment", "miou", [60] * 6, 1.93)
                                         + task_rows("at", "segment", "miou", [60] * 6, ceiling)),
                            THRESHOLDS, n_classes=10)
    assert gate_of(table, "under", "learned").threshold == pytest.approx(1.9183, abs=1e-4)
    assert gate_of(table, "under", "learned").passed and not gate_of(table, "over", "learned").passed
    assert not gate_of(table, "at", "learned").passed  # a loss at the ceiling has not gone below it
    assert gate_of(table, "under", "converged").passed  # the converged gate reads mIoU: flat


def test_pose_learns_above_its_accuracy_floor_and_not_at_it():
    table = gates.run_gates(pd.DataFrame(task_rows("above", "pose", "pose_accuracy", [30.5] * 6, 5.0)
                                         + task_rows("at", "pose", "pose_accuracy", [30.0] * 6, 0.1)
                                         + task_rows("below", "pose", "pose_accuracy", [29.5] * 6, 0.1)),
                            THRESHOLDS, n_classes=10)
    assert gate_of(table, "above", "learned").passed  # the floor, not the loss, decides for pose
    assert not gate_of(table, "at", "learned").passed and not gate_of(table, "below", "learned").passed
    assert gate_of(table, "at", "learned").threshold == 30.0


def test_values_exactly_at_a_gates_threshold():
    """Strict where a gate asks for more than its threshold (AP above the floor, a metric that moved less than the
    tolerance), inclusive where it asks for at least (the kept share, the pretext loss at most factor x chance)."""
    detect = [dict(run_id="floor", arm="floor", seed=0, step=s, epoch=s, split="val", metric="AP", value=5.0)
              for s in range(1, 7)]
    assert not gate_of(gates.run_gates(pd.DataFrame(detect), THRESHOLDS, 10, task="detect"), "floor", "learned").passed
    table = gates.run_gates(pd.DataFrame(run_rows("moved one", "scratch", 0, [80, 85, 89, 90, 90.5, 91], [0.3] * 6)
                                         + run_rows("kept a tenth", "scratch+ST", 1, [90] * 6, [0.3] * 6,
                                                    kept_share=0.1)), THRESHOLDS, n_classes=10)
    moved = gate_of(table, "moved one", "converged")
    assert moved.value == pytest.approx(1.0) and not moved.passed  # 90 -> 91 over the last third: not < 1
    assert gate_of(table, "kept a tenth", "self_training").passed
    chance = math.log(10)  # a supervised checkpoint's pretext at chance: ln C
    checkpoints = pd.DataFrame([dict(checkpoint="upstream", metric="loss", value=0.9 * chance),
                                dict(checkpoint="upstream", metric="accuracy", value=0.5)])
    assert gates.checkpoint_gates(checkpoints, {}, THRESHOLDS, n_upstream_classes=10)["upstream"]["passed"]


@pytest.mark.parametrize("interval,condition,status", [
    ((0.0, 3.0), directional("x"), "undecided"),          # a claim > 0 needs the whole interval above 0
    ((-2.0, 1.0), directional("x"), "undecided"),         # ... and fails only wholly under delta (1): 1 is not
    ((-2.0, 0.999), directional("x"), "failed"),
    ((-2.0, 2.0), dict(name="x", op="abs<=", value=2.0), "met"),      # a bound holds up to its margin
    ((-3.0, -1.0), dict(name="x", op=">", value=-1.0), "failed"),     # ... and fails where it touches nothing allowed
])
def test_an_interval_ending_exactly_at_a_boundary(interval, condition, status):
    low, high = interval
    effect = Effect((low + high) / 2, low, high, 5, "points")
    assert verdicts.condition_status(effect, condition) == status


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


def test_the_verdict_is_the_primary_conditions_status():
    conditions = lambda primary, other: [dict(primary=True, status=primary), dict(primary=False, status=other)]
    assert verdicts.verdict_of(conditions("met", "failed")) == "reproduced"
    assert verdicts.verdict_of(conditions("failed", "met")) == "not reproduced"
    assert verdicts.verdict_of(conditions("not tested", "met")) == "not tested"
    assert verdicts.verdict_of(conditions("undecided", "failed")) == "inconclusive"


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
    finding = zo.zo3_finding(results, ZO3, "test")
    assert {c["status"] for c in finding["conditions"]} == {"failed"}  # on the effects alone: exactly 0, under delta
    gated = gates.apply_gates(finding, gates.run_gates(results, THRESHOLDS, 10))
    assert gated["verdict"] == "not tested"
    assert gated["because"]["kind"] == "gate_failed" and gated["because"]["gate"] == "distinct"
    assert all(c["status"] == "not tested" and "one and the same run" in c["because"][-1]["detail"]
               for c in gated["conditions"])


def test_a_chance_level_arm_makes_its_condition_not_tested():
    cells = {("scratch", "S1", 1.0): 90, ("pretrained", "S1", 1.0): 92, ("scratch", "S4", 1.0): 10,
             ("pretrained", "S4", 1.0): 85, ("scratch", "S1", 0.2): 80, ("pretrained", "S1", 0.2): 88,
             ("scratch", "S4", 0.2): 10, ("pretrained", "S4", 0.2): 80}
    results = zo_results(cells)
    at_chance = results.arm.eq("scratch") & results.aug.eq("S4") & results.metric.eq("loss")
    results.loc[at_chance, "value"] = math.log(10)
    finding = zo.zo2_finding(results, ZO2, "test")
    assert finding["verdict"] == "not reproduced"  # what the numbers alone would say: the gain grows with labels at S4
    gated = gates.apply_gates(finding, gates.run_gates(results, THRESHOLDS, 10))
    assert gated["verdict"] == "not tested"
    assert all(c["status"] != "failed" for c in gated["conditions"])
    reasons = " ".join(words.reason_text(r) for c in gated["conditions"] for r in c["because"])
    assert "scratch (aug=S4, label_fraction=1): the learned gate failed in 3 of 3 runs" in reasons
    assert why_text(gated).startswith("scratch: the learned gate failed (worst 2.3 against 1.84)")
    failed = [g for g in gated["gates"] if not g["passed"]]
    assert failed and all(g["arm"]["arm"] == "scratch" and g["arm"]["aug"] == "S4" for g in failed)


def test_a_gate_reason_without_detail_ends_at_its_number():
    reason = dict(kind="gate_failed", arm={"arm": "scratch", "schedule": 1}, gate="learned", runs=6, failed_runs=2,
                  value=4.41, threshold=5.0, detail="")
    assert words.reason_text(reason).endswith("the learned gate failed in 2 of 6 runs (worst 4.41 against 5)")
    assert words.reason_text(dict(reason, detail="below the floor")).endswith("against 5): below the floor")


def test_power_matches_a_hand_computation():
    effect = effects.mean_effect([-0.5, 0.5, 1.5])  # three seeds with sample sd 1
    result = verdicts.power(effect, directional("gain"))
    # (t(0.975, 2) + t(0.8, 2)) * sd / sqrt(3) = (4.3027 + 1.0607) / 1.7321 = 3.0965
    assert result["mde"] == pytest.approx(3.0965, abs=1e-4)
    # delta 1: (t(0.975, n-1) + t(0.8, n-1)) / sqrt(n) <= 1 first at n = 10
    # (n = 9: (2.306 + 0.889) / 3 = 1.065; n = 10: (2.262 + 0.883) / 3.162 = 0.995), whatever the estimate.
    assert result["seeds_needed"] == 10
    assert verdicts.power(effects.mean_effect([-2.5, -1.5, -0.5]), directional("gain"))["seeds_needed"] == 10
    # The upper 80% bound of the sd: sqrt(2 / chi2_{0.2, 2}) = sqrt(2 / 0.446287).
    assert result["sd_upper"] == pytest.approx(math.sqrt(2 / 0.446287), rel=1e-5)


def test_an_undecided_condition_states_its_power_and_no_other_does():
    cells = {("scratch", "S1", 1.0): 80, ("scratch+ST", "S1", 1.0): 80.1}
    results = zo_results(cells)
    results.loc[results.arm.eq("scratch+ST") & results.seed.eq(1) & results.metric.eq("accuracy"), "value"] += 2
    finding = gates.apply_gates(zo.zo3_finding(results, ZO3, "test"), gates.run_gates(results, THRESHOLDS, 10))
    (condition,) = finding["conditions"]
    assert finding["verdict"] == "inconclusive"
    assert condition["power"]["mde"] > 0 and condition["power"]["seeds_needed"] > 3
    assert "minimum detectable effect" in pages.condition_line(condition)
    assert why_text(finding).startswith(f"about {condition['power']['seeds_needed']} seeds would decide δ")
    settled = dict(condition, status="met")
    assert "minimum detectable effect" not in pages.condition_line(settled)


@pytest.mark.parametrize("rhos", [[1.0, 1.0, 1.0], [0.9, 1.0, -0.5], [-1.0, -0.99, 0.2]])
def test_a_rank_correlation_interval_stays_in_minus_one_one(rhos):
    effect = effects.rank_effect(rhos)
    assert -1 <= effect.ci_low <= effect.estimate <= effect.ci_high <= 1


def test_one_rank_correlation_says_nothing_about_its_spread():
    effect = effects.rank_effect([0.5])
    assert effect.estimate == pytest.approx(0.5) and (effect.ci_low, effect.ci_high) == (-1.0, 1.0)


def test_the_fisher_z_interval_matches_a_hand_computation():
    # z = atanh(0.5, 0.7, 0.9) = 0.549306, 0.867301, 1.472219; mean 0.962942, sample sd 0.468831, se 0.270680;
    # t(0.975, 2) = 4.302653: z interval 0.962942 -/+ 1.164641 = [-0.201699, 2.127584]; tanh of each end.
    effect = effects.rank_effect([0.5, 0.7, 0.9])
    assert effect.estimate == pytest.approx(math.tanh(0.962942), abs=1e-5)
    assert effect.ci_low == pytest.approx(math.tanh(-0.201699), abs=1e-5)
    assert effect.ci_high == pytest.approx(math.tanh(2.127584), abs=1e-5)
    assert effect.ci_low < 0 < effect.estimate < 0.8  # tanh of the mean z, not the mean rho (0.7)


def test_holm_decides_a_family_more_strictly_than_its_members():
    # Each condition's own 95% interval clears 0, two only just (one-sided p = 0.022 each): Holm's second step
    # asks for p < 0.025 / 2, and stops there.
    se = 1.0 / stats.t.ppf(0.975, 4)
    tests = [(Effect(e, e - 1.0, e + 1.0, 5, se=se, df=4), directional("gain")) for e in (5.0, 1.05, 1.05)]
    assert [verdicts.condition_status(*t) for t in tests] == ["met", "met", "met"]
    assert verdicts.holm_statuses(tests) == ["met", "undecided", "undecided"]
    assert verdicts.holm_statuses([(Effect(-5.0, -6.0, -4.0, 5, se=se, df=4), directional("gain"))]) == ["failed"]


def test_deviations_reach_the_findings_and_the_exploration_is_recorded_once(tmp_path):
    from rethink.study.records import write_findings

    deviation = dict(findings=["HE-4"], change="c", reason="r", earlier_reports="0250517")
    pd.DataFrame(dict(seed=[101, 100])).to_csv(tmp_path / "results.csv", index=False)
    written = write_findings(str(tmp_path), [{"id": "HE-4"}, {"id": "HE-1"}], deviations=[deviation], phase="confirmation")
    assert [len(f["deviations"]) for f in written] == [1, 0] and written[0]["seeds"] == [100, 101]
    assert written[0]["phase"] == "confirmation"
    read_back = pd.read_json(tmp_path / "findings.json").iloc[0]
    assert read_back["deviations"][0]["earlier_reports"] == "0250517"  # a commit, quoted: not an octal number
    # Protocol v2's deviations each name findings of their own notebook; the He and Zoph parts have none. The
    # exploration's record writes each change once, naming its findings.
    default = config.load("default")
    for notebook, entries in default["deviations"].items():
        assert all(set(d["findings"]) <= set(default["notebooks"][notebook]["findings"]) for d in entries), notebook
    assert not {"01", "02", "03", "04", "05"} & {notebook[:2] for notebook in default["deviations"]}
    record = config.exploration_record()["deviations"]
    changes = [d["change"] for d in record]
    assert len(changes) == len(set(changes))
    gate = next(d for d in record if d["change"].startswith("the converged gate reads"))
    assert gate["findings"] == ["HE-1", "HE-2", "HE-3", "HE-4"]


def test_the_summary_opens_each_report_with_verdict_effects_gates_and_figure():
    cells = {("pretrained", "S1", 0.2): 80.0, ("pretrained+joint", "S1", 0.2): 81.0,
             ("pretrained+joint+ST", "S1", 0.2): 82.5}
    results = zo_results(cells)
    finding = gates.apply_gates(zo.zo5_finding(results, ZO5, "test", figure="zo5.png"),
                                gates.run_gates(results, THRESHOLDS, 10))
    deviation = dict(findings=["ZO-5"], change="redefined | now additive", reason="r", earlier_reports="none")
    summary = pages.summary_markdown(finding, [deviation])
    heading, _, claim, _, header, rule, *rows = summary.splitlines()
    assert heading.startswith("### ZO-5: ") and "reproduced</b></span>" in heading and "white-space:nowrap" in heading
    assert claim == f"*{zo.CLAIMS['ZO-5']['claim']}*"
    assert header.count("|") == rule.count("|") == 3 and all(row.count("|") - row.count("\\|") == 3 for row in rows)
    table = dict(row.strip("| ").split(" | ", 1) for row in rows)
    assert table["**ours**"] == ("+1.00 [+1.00, +1.00] accuracy points: pre-trained + joint training − pre-trained "
                                 "accuracy at S1_20% (3 seeds)")
    assert table["**paper**"] == zo.CLAIMS["ZO-5"]["paper_effect"]
    assert table["**criterion**"].startswith("pre-trained + joint training − pre-trained accuracy at S1_20% > 0 "
                                             "(primary, δ 1)")
    assert table["**gates**"] == f"all {len(finding['gates'])} passed"
    assert table["**deviations from protocol v2**"] == "redefined \\| now additive"  # the pipe is escaped
    assert "**to decide it**" not in table  # only an undecided primary condition says how many seeds would
    # A finding whose runs a profile cut has no effect: its cells say so, not "+nan".
    nd2 = {"conditions": [directional("finetuned_gap", primary=True), directional("scratch_gap", "<")]}
    cut = gates.apply_gates(nd.nd2_finding(pd.DataFrame(dict(arm=["scratch"], label_count=[100], seed=[0],
                                                             value=[40.0])), "rotation", "big", nd2, "test",
                                           not_run_minutes=10.0), None)
    assert cut["verdict"] == "not tested" and cut["because"]["kind"] == "not_run"
    assert why_text(cut) == "not run: cut for the budget, about 10 minutes to run"
    for text in (pages.summary_markdown(cut), pages.verdict_markdown([cut])):
        assert "nan" not in text and "— (not measured) accuracy points" in text
    assert "it would take about 10 minutes" in pages.verdict_sentence(cut)


def test_each_gate_is_shown_at_its_worst_run():
    # Three seeds of one arm: the converged gate's worst is the run that moved most, the learned gate's (a loss
    # ceiling) the highest loss, even where every run passed.
    results = pd.DataFrame(run_rows("a", "scratch", 0, [80, 85, 88, 90.2, 90.4, 90.5], [0.3] * 6)
                           + run_rows("b", "scratch", 1, [80, 85, 88, 89.0, 90.4, 90.9], [0.5] * 6)
                           + run_rows("c", "scratch", 2, [80, 85, 88, 90.0, 90.5, 90.6], [0.4] * 6))
    shown = {g["gate"]: g for g in gates.arm_gates(gates.run_gates(results, THRESHOLDS, 10), {"arm": "scratch"})}
    assert not shown["converged"]["passed"] and shown["converged"]["failed_runs"] == 1
    assert shown["converged"]["value"] == pytest.approx(1.9) and shown["converged"]["worst_seed"] == 1
    assert shown["learned"]["passed"] and shown["learned"]["value"] == pytest.approx(0.5)
    assert shown["learned"]["worst_seed"] == 1 and shown["learned"]["runs"] == 3
    # An AP floor's worst is the lowest AP.
    rows = [dict(run_id=f"r{seed}", arm="gn", seed=seed, step=s, epoch=s, split="val", metric="AP", value=ap)
            for seed, ap in ((0, 30.0), (1, 12.0), (2, 25.0)) for s in range(1, 7)]
    learned = gates.arm_gates(gates.run_gates(pd.DataFrame(rows), THRESHOLDS, 10, task="detect"), {"arm": "gn"})[0]
    assert learned["gate"] == "learned" and learned["value"] == 12.0 and learned["worst_seed"] == 1


def test_the_converged_gate_needs_its_evaluations_after_the_drop_and_says_when_they_span_little():
    def run(run_id, steps, aps, lrs):
        return ([dict(run_id=run_id, arm=run_id, seed=0, step=s, epoch=s, split="val", metric="AP", value=v)
                 for s, v in zip(steps, aps)]
                + [dict(run_id=run_id, arm=run_id, seed=0, step=s, epoch=s, split="train", metric="lr", value=v)
                   for s, v in zip(steps, lrs)])
    # He et al.'s last drop at 96% of a 744-step run: three evaluations after it span 19 steps, 3% of the run.
    steps = [124, 248, 372, 496, 620, 725, 735, 744]
    lrs = [0.05] * 5 + [0.0005] * 3
    table = gates.run_gates(pd.DataFrame(run("late", steps, [10, 15, 18, 20, 22, 33, 33.2, 33.4], lrs)),
                            {**THRESHOLDS, "min_evals_after_drop": 3}, n_classes=10, task="detect")
    late = gate_of(table, "late", "converged")
    assert late.passed and "3 evaluations" in late.note and "span 3% of the run, under a tenth" in late.note
    two = gates.run_gates(pd.DataFrame(run("two", steps[:5] + [735, 744], [10, 15, 18, 20, 22, 33, 33.4],
                                           [0.05] * 5 + [0.0005] * 2)),
                          {**THRESHOLDS, "min_evals_after_drop": 3}, n_classes=10, task="detect")
    assert not gate_of(two, "two", "converged").passed and "3 needed" in gate_of(two, "two", "converged").note


def test_the_last_third_starts_at_the_evaluation_placed_at_two_thirds_of_the_run():
    """Newell & Deng's 800-step runs: six evaluations at 800 x k / 6 rounded to a step, the LR dropping at 45% and
    60%. The fourth evaluation stands for two thirds of the run though it lands at step 533 (800 x 2/3 = 533.3):
    the gate reads it with the two after it, the three evaluations the loop places after the last drop."""
    from rethink.core.training.schedule import evaluation_steps, step_schedule

    drops = step_schedule(800, 800, (0.45, 0.6))
    steps = evaluation_steps(800, 6, drops)
    assert drops == [360, 480] and steps == [133, 267, 400, 533, 667, 800]
    accuracies, lrs = [30.0, 34.0, 38.0, 39.0, 39.4, 39.7], [0.1, 0.1, 0.01, 0.001, 0.001, 0.001]
    rows = ([dict(run_id="nd", arm="scratch", seed=0, step=s, epoch=s, split="val", metric="accuracy", value=v)
             for s, v in zip(steps, accuracies)]
            + [dict(run_id="nd", arm="scratch", seed=0, step=s, epoch=s, split="train", metric="lr", value=v)
               for s, v in zip(steps, lrs)])
    rule = {**THRESHOLDS, "min_evals_after_drop": 3, "last_third_rounded": True}
    converged = gate_of(gates.run_gates(pd.DataFrame(rows), rule, 10), "nd", "converged")
    assert converged.passed and "(3 evaluations)" in converged.note
    assert converged.value == pytest.approx(39.7 - 39.0)  # over steps 533, 667 and 800; step 400 is before the drop
    # The exploration's rule (the last third from exactly 533.3), which its re-rendered reports keep: two of them.
    exact = gate_of(gates.run_gates(pd.DataFrame(rows), {**rule, "last_third_rounded": False}, 10), "nd", "converged")
    assert not exact.passed and "2 evaluation(s)" in exact.note and "3 needed" in exact.note


def test_pretraining_replicates_count_the_checkpoints_behind_the_seeds():
    cells = {("scratch", "S1", 1.0): 80, ("pretrained", "S1", 1.0): 82}
    results = zo_results(cells, pretrained={"init": "pretrained"}, scratch={"init": "scratch"})
    one = gates.run_gates(results, THRESHOLDS, 10)
    arms = [{"arm": "pretrained", "aug": "S1"}, {"arm": "scratch", "aug": "S1"}]
    assert gates.pretraining_replicates(one, arms) == 1  # no checkpoint column: one checkpoint for every seed
    per_seed = results.assign(checkpoint=[f"upstream-seed{s}" if a == "pretrained" else None
                                          for a, s in zip(results.arm, results.seed)])
    assert gates.pretraining_replicates(gates.run_gates(per_seed, THRESHOLDS, 10), arms) == 3
    assert gates.pretraining_replicates(one, [{"arm": "scratch"}]) is None


def test_a_finding_without_replicates_says_so():
    rhos = effects.rank_effect([0.4, 0.8, 0.6], because=(effects.not_replicated("one checkpoint per method"),))
    criterion = {"conditions": [dict(name="rho", op="<", value=0.5, primary=True)]}
    finding = gates.apply_gates(verdicts.finding({"ND-5": {"claim": "c", "paper": "p"}}, "ND-5", criterion,
                                                 {"rho": rhos}, {"rho": "a correlation"}, "test"), None)
    assert finding["verdict"] == "not tested" and finding["because"]["kind"] == "not_replicated"
    assert why_text(finding) == "not replicated: one pre-training for every seed"
    assert pages.verdict_sentence(finding) == "Not tested at this scale: not replicated: one checkpoint per method."


def test_each_reason_reaches_the_index_sentence(tmp_path):
    import json

    from rethink.report.index import write_index

    criterion = {"conditions": [directional("gain", primary=True)]}
    claims = {f"X-{k}": {"claim": f"claim {k}", "paper": "p"} for k in (1, 2, 3)}
    gate = effects.failed_bound("precondition", -0.5, 0.0, "scratch did not gain")
    made = [verdicts.finding(claims, "X-1", criterion, {"gain": effects.because(effects.mean_effect([1, 2, 3]), gate)},
                             {}, "test"),
            verdicts.untested_finding(claims, "X-2", criterion, {}, "points", effects.not_replicated("one checkpoint"),
                                      "test"),
            verdicts.untested_finding(claims, "X-3", criterion, {}, "points", effects.not_run("cut", 8.9), "test")]
    folder = tmp_path / "01_report"
    folder.mkdir()
    (folder / "findings.json").write_text(json.dumps([dict(gates.apply_gates(f, None), seeds=[100, 101, 102],
                                                           phase="confirmation") for f in made]))
    (folder / "run.json").write_text(json.dumps({"git_commit": "unknown"}))
    pd.DataFrame(dict(metric=["seconds"], value=[1.0])).to_csv(folder / "results.csv", index=False)
    write_index([folder], tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "the precondition gate failed (worst -0.5 against 0)" in page
    assert "not replicated: one pre-training for every seed" in page
    assert "not run: cut for the budget, about 9 minutes to run" in page
    assert "a gate failed" not in page.replace("the precondition gate failed", "")
    assert "confirmation (seeds 100-102)" in page
