"""Newell & Deng's utility on known curves, the tasks and training options ND needs (pose, segmentation of
classification images, frozen stages, self-training rounds), and the ND/BL verdicts on constructed results."""
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from rethink.core.training import selftrain
from rethink.study import bl, gates, nd, runs
from rethink.core.data import world as W
from rethink.core.data.tasks import load_task_data
from rethink.core.training.config import TrainConfig
from rethink.core.training.evaluation import evaluate
from rethink.core.training.loop import fit
from rethink.core.training.checkpoints import new_model
from rethink.study.nd import matched_count, utility

COUNTS = [10, 100, 1000, 10000]


def test_utility_of_a_curve_shifted_by_a_known_factor():
    scratch = [0.2 + 0.1 * np.log10(n) for n in COUNTS]  # straight in log n
    finetuned = [0.2 + 0.1 * np.log10(3 * n) for n in COUNTS]  # what scratch scores with 3x the labels
    u, outside = utility(COUNTS, scratch, finetuned, max_factor=100)
    assert u == pytest.approx([2, 2, 2, 2]) and outside.tolist() == [False, False, False, True]
    u, _ = utility(COUNTS, scratch, scratch)
    assert u == pytest.approx([0, 0, 0, 0])  # no better than scratch: worth no labels


def test_utility_uses_the_monotone_envelope_and_clamps_beyond_the_curve():
    scratch = [0.3, 0.5, 0.45, 0.7]  # a dip: the envelope stays at 0.5 until 10000 labels
    n_hat, outside = matched_count(COUNTS, scratch, 0.6)
    assert n_hat == pytest.approx(np.sqrt(100 * 10000)) and not outside  # halfway from 0.5 to 0.7 in log n
    assert matched_count(COUNTS, scratch, 0.99, max_factor=10) == (pytest.approx(100000), True)
    assert matched_count(COUNTS, scratch, 0.0, max_factor=10) == (pytest.approx(1), True)
    u, _ = utility(COUNTS, scratch, [0.3, 0.3, 0.3, 0.3])
    assert u[0] == pytest.approx(0) and u[-1] < 0  # worse than scratch with the most labels: negative utility
    assert matched_count([10, 100], [0.4, 0.4], 0.5, max_factor=2) == (pytest.approx(200), True)  # a flat curve
    for bad in ([10], [100, 10]):
        with pytest.raises(ValueError, match="strictly increasing label counts"):
            matched_count(bad, [0.5] * len(bad), 0.5)


def final_rows(values: dict, **extra) -> pd.DataFrame:
    """Final-metric rows from {(arm, label_count, seed): value}."""
    return pd.DataFrame([dict(arm=a, label_count=n, seed=s, value=v, **extra) for (a, n, s), v in values.items()])


def directional(name, op=">", primary=False):
    """A directional condition as config/study.yaml writes one (delta chosen for the test)."""
    return dict(name=name, op=op, value=0.0, delta=1.0, delta_source="test", primary=primary)


ND1 = {"conditions": [directional("utility_change", "<", primary=True), dict(name="utility_most", op="<", value=1.0)]}
ND2 = {"conditions": [directional("finetuned_gap", primary=True), directional("scratch_gap", "<")]}
ND3 = {"conditions": [directional("utility_gain", primary=True)]}
ND4 = {"conditions": [directional("probe_gap", "<", primary=True), dict(name="rank_correlation", op="<", value=0.5)]}
ND5 = {"conditions": [dict(name="rank_correlation", op="<", value=0.5, primary=True)]}
BL1 = {"conditions": [dict(directional("invariance_gap", "<", primary=True), delta=0.01)]}
BL2 = {"conditions": [directional("last_minus_teacher", primary=True), directional("last_minus_first")]}


def curves(arms: dict, seeds=(0, 1, 2)) -> pd.DataFrame:
    """arm -> function of (label count, seed) giving accuracy."""
    return final_rows({(arm, n, s): f(n, s) for arm, f in arms.items() for n in COUNTS for s in seeds})


def test_nd1_and_nd3_verdicts_on_constructed_curves():
    scratch = lambda n, s: 20 + 10 * np.log10(n) + 0.1 * s
    # Worth 4x the labels at 10, 1x at 10000: utility falls from 3 to 0.
    falling = lambda n, s: scratch(n * 4 ** (1 - np.log10(n / 10) / 3), s)
    final = curves({"scratch": scratch, "rotation": falling, "jigsaw": falling})
    f = nd.nd1_finding(final, ["rotation", "jigsaw"], ND1, 10.0, 0.2, "test")
    change = f["conditions"][0]
    assert change["name"] == "utility_change" and change["estimate"] == pytest.approx(-3)
    assert change["label"] == "U(10000) − U(10), averaged over rotation, jigsaw"
    assert f["verdict"] == "reproduced"
    rising = lambda n, s: scratch(n * 4 ** (np.log10(n / 10) / 3), s)
    assert nd.nd1_finding(curves({"scratch": scratch, "rotation": rising}), ["rotation"], ND1, 10.0, 1.0,
                          "test")["verdict"] == "not reproduced"
    hard = curves({"scratch": scratch, "rotation": lambda n, s: scratch(2 * n, s) + 0.01 * s})
    easy = curves({"scratch": scratch, "rotation": lambda n, s: scratch(1.5 * n, s) + 0.01 * s})
    f = nd.nd3_finding(easy, hard, "rotation", ND3, 10.0, 1.0, "test")
    assert 0.4 < f["effect"]["estimate"] < 0.6 and f["verdict"] == "reproduced"
    # Worth 2x the labels everywhere: at the most labels n̂ lies beyond the scratch curve for every seed (1 of 4
    # counts = 25% of the values), more than a 20% bound allows.
    f = gates.apply_gates(nd.nd3_finding(easy, hard, "rotation", ND3, 10.0, 0.2, "test"), None)
    assert f["verdict"] == "not tested" and f["because"]["gate"] == "utility bound"
    assert f["because"]["value"] == pytest.approx(0.25) and "25% of the U values" in f["because"]["detail"]
    cut = gates.apply_gates(nd.nd3_finding(easy, hard.iloc[:0], "rotation", ND3, 10.0, 1.0, "test"), None)
    assert cut["verdict"] == "not tested" and cut["because"]["kind"] == "not_run"
    assert "cut the hard world" in cut["because"]["detail"]


def test_utility_is_read_at_the_fine_tuned_counts_and_refuses_a_falling_scratch_curve():
    scratch = lambda n, s: 20 + 10 * np.log10(n) + 0.1 * s
    final = curves({"scratch": scratch})
    final = pd.concat([final, final_rows({("rotation", n, s): scratch(3 * n, s) for n in (10, 100) for s in (0, 1, 2)})])
    u = nd.utility_rows(final, ["rotation"], 10.0)
    assert sorted(u.label_count.unique()) == [10, 100] and u.utility.to_numpy() == pytest.approx(2)
    assert nd.utility_validity(final, u, 0.2) == []
    dip = final.copy()
    dip.loc[(dip.arm == "scratch") & (dip.label_count == 1000) & (dip.seed == 1), "value"] = 0.0
    (reason,) = nd.utility_validity(dip, nd.utility_rows(dip, ["rotation"], 10.0), 0.2)
    assert reason["gate"] == "scratch curve rises" and "seed 1's scratch curve falls" in reason["detail"]
    f = gates.apply_gates(nd.nd1_finding(dip, ["rotation"], ND1, 10.0, 0.2, "test"), None)
    assert f["verdict"] == "not tested" and f["because"]["gate"] == "scratch curve rises"


def test_the_model_is_selected_on_validation_and_scored_on_the_test_split():
    rows = [dict(run_id=r, arm="scratch", seed=0, step=step, split=split, metric="accuracy", value=value)
            for r, curve in (("a", {1: (50, 48), 2: (70, 66), 3: (69, 68)}), ("b", {1: (40, 41), 2: (40, 45)}))
            for step, (val, test) in curve.items() for split, value in (("val", val), ("test", test))]
    chosen = nd.selected_metric(pd.DataFrame(rows), "accuracy").set_index("run_id")
    assert chosen.value.to_dict() == {"a": 66, "b": 41}  # a: best on validation at step 2; b: the earliest tie
    assert set(chosen.split) == {"test"}
    with pytest.raises(ValueError, match="no held-out test scores"):
        nd.selected_metric(pd.DataFrame([r for r in rows if r["split"] == "val"]), "accuracy")


def test_nd2_nd4_nd5_bl1_bl2_verdicts_on_constructed_results():
    noise = {0: 0.0, 1: 0.4, 2: -0.3}
    sizes = final_rows({(arm, 10, s): v + noise[s] for s in noise for arm, v in
                        {"scratch": 30, "rotation": 40, "scratch (big)": 25, "rotation (big)": 48}.items()})
    f = nd.nd2_finding(sizes, "rotation", "big", ND2, "test")
    assert [c["estimate"] for c in f["conditions"]] == pytest.approx([8, -5]) and f["verdict"] == "reproduced"
    cut = gates.apply_gates(nd.nd2_finding(sizes[~sizes.arm.str.endswith("(big)")], "rotation", "big", ND2,
                                           "test"), None)  # a profile without ND-2's runs
    assert cut["verdict"] == "not tested" and "cut the large model" in cut["because"]["detail"]

    accuracy = {"a": (60, 80), "b": (55, 82), "c": (50, 84)}  # linear probe ranks a > b > c, fine-tuning c > b > a
    probe = pd.concat([final_rows({(m, 100, s): accuracy[m][k == 0] + noise[s] for m in accuracy for s in noise},
                                  freeze=k) for k in (0, 4)])
    f = nd.nd4_finding(probe, list(accuracy), ND4, "test", replicated=True)
    effects = {c["name"]: c["estimate"] for c in f["conditions"]}
    assert effects["probe_gap"] == pytest.approx(-27)
    assert effects["rank_correlation"] == pytest.approx(-1, abs=2e-3)  # Fisher z clips |rho| < 1
    # One pre-training checkpoint per method: the seeds are no replicates, so the correlation cannot decide; the
    # primary condition (the probe's gap) still does.
    shared = gates.apply_gates(nd.nd4_finding(probe, list(accuracy), ND4, "test", replicated=False), None)
    rank = [c for c in shared["conditions"] if c["name"] == "rank_correlation"][0]
    assert rank["status"] == "not tested" and rank["because"][0]["kind"] == "not_replicated"
    assert shared["verdict"] == "reproduced"

    def task(gains):
        return final_rows({(arm, 100, s): 50 + gains.get(arm, 0) + noise[s] for arm in ["scratch", *accuracy]
                           for s in noise})
    f = nd.nd5_finding({"classify": task({"a": 3, "b": 2, "c": 1}), "pose": task({"a": 1, "b": 2, "c": 3})},
                       list(accuracy), ND5, "test", replicated=True)
    assert f["effect"]["estimate"] == pytest.approx(-1, abs=2e-3) and f["verdict"] == "reproduced"
    same = nd.nd5_finding({"classify": task({"a": 3, "b": 2, "c": 1}), "pose": task({"a": 6, "b": 4, "c": 2})},
                          list(accuracy), ND5, "test", replicated=True)
    assert same["effect"]["estimate"] == pytest.approx(1, abs=2e-3) and same["verdict"] == "not reproduced"
    one = gates.apply_gates(nd.nd5_finding({"classify": task({"a": 3})}, list(accuracy), ND5, "test",
                                           replicated=False), None)
    assert one["verdict"] == "not tested" and one["because"]["kind"] == "not_run"
    assert "one task (classify)" in one["because"]["detail"]
    assert {a["arm"] for a in one["conditions"][0]["arms"]} == {"scratch", *accuracy}  # the arms that ran

    invariance = pd.DataFrame([dict(method=m, seed=s, value=v + 0.01 * s) for s in noise for m, v in
                               {"autoencoder": 0.1, "rotation": 0.4, "simclr": 0.9}.items()])
    f = bl.bl1_finding(invariance, BL1, "test", replicated=True)
    assert f["effect"]["estimate"] == pytest.approx(-0.3) and f["verdict"] == "reproduced"
    shared = gates.apply_gates(bl.bl1_finding(invariance, BL1, "test", replicated=False), None)
    assert shared["verdict"] == "not tested" and shared["because"]["kind"] == "not_replicated"
    assert "one pre-training checkpoint" in shared["because"]["detail"]

    rounds = final_rows({(bl.round_arm(k), 100, s): 70 + k + noise[s] for k in range(4) for s in noise})
    f = bl.bl2_finding(rounds, BL2, "test")
    assert [c["name"] for c in f["conditions"]] == ["last_minus_teacher", "last_minus_first"]
    assert f["conditions"][0]["label"] == "accuracy of the round-3 student − the teacher's"
    assert [c["estimate"] for c in f["conditions"]] == pytest.approx([3, 2]) and f["verdict"] == "reproduced"


def test_classification_images_also_serve_pose_and_segmentation(tiny_world):
    world = W.load_world(tiny_world / "classify_train.npz")
    pose = load_task_data(tiny_world / "classify_train.npz", "pose")
    phase = 2 * np.pi * world["pose"][:, 0]
    assert pose.pose.shape == (256, 3)
    assert torch.allclose(pose.pose[:, 0], torch.from_numpy(np.cos(phase)).float(), atol=1e-6)
    assert torch.allclose(pose.pose[:, 2], torch.from_numpy(world["pose"][:, 1]))
    segment = load_task_data(tiny_world / "classify_train.npz", "segment")
    assert set(segment.semantic[0].unique().tolist()) == {0, int(world["labels"][0]) + 1}
    with pytest.raises(ValueError, match="task 'pose' needs each object's pose"):
        load_task_data(tiny_world / "scenes_train.npz", "pose")


def test_a_pose_model_trains_and_is_scored(tiny_world):
    data = load_task_data(tiny_world / "classify_train.npz", "pose")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    before = evaluate(model, data)
    history = fit(model, data, data, TrainConfig(epochs_1x=4, batch_size=32, lr=0.05, aug="S0", evals=1,
                                                 progress=False))
    after = {r["metric"]: r["value"] for r in history if r["split"] == "val"}
    assert 0 <= after["pose_accuracy"] <= 1 and after["loss"] < before["loss"]
    with pytest.raises(ValueError, match="task 'pose' trains with aug 'S0' only"):
        fit(model, data, data, TrainConfig(aug="S1", progress=False))


def test_frozen_stages_do_not_change(tiny_world):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.head.fc.weight.clone()
    fit(model, data, data, TrainConfig(epochs_1x=1, batch_size=64, evals=1, freeze=4, progress=False))
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in backbone.items())
    assert not torch.equal(head, model.head.fc.weight)  # the linear probe trained
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    fit(model, data, data, TrainConfig(epochs_1x=1, batch_size=64, evals=1, freeze=2, progress=False))
    state = model.backbone.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in backbone.items() if k.startswith(("stem.", "stages.0.")))
    assert not torch.equal(backbone["stages.2.0.0.weight"], state["stages.2.0.0.weight"])
    for bad in (-1, 5):
        with pytest.raises(ValueError, match="freeze must be 0 to 4"):
            TrainConfig(freeze=bad)


def test_each_self_training_round_learns_from_the_round_before(student_run, tmp_path):
    kwargs = dict(student_run, label_fraction=0.25, train=replace(student_run["train"], batch_size=32))
    first, _ = runs.run_arm(selftrain=selftrain.SelfTraining(threshold=0.0, rounds=1), **kwargs)
    third, _ = runs.run_arm(selftrain=selftrain.SelfTraining(threshold=0.0, rounds=3), **kwargs)
    records = {p.stem: p.read_text() for p in (tmp_path / "runs").glob("*.json")}
    assert len(records) == 4  # the teacher and rounds 1, 2, 3: round 1 was read back, not retrained
    second = next(d for d, text in records.items() if f'"teacher": "{first}"' in text)
    assert f'"teacher": "{second}"' in records[third]
    with pytest.raises(ValueError, match="pseudo_rounds must be >= 1"):
        selftrain.SelfTraining(rounds=0)


def test_label_count_runs_give_each_count_the_steps_it_needs(tiny_world, tmp_path):
    shutil.copy(tiny_world / "classify_train.npz", tmp_path / "downstream_classify_train.npz")
    runs = nd.label_count_runs(str(tmp_path), [32, 64, 256], 2, 32, min_steps=6, init=["scratch"], seed=[0])
    assert [r["label_fraction"] for r in runs] == [0.125, 0.25, 1.0]
    steps = [round(r["epochs_1x"] * (256 * r["label_fraction"] // 32)) for r in runs]
    assert steps == [6, 6, 16]  # max(6 steps, 2 epochs of the count's own 1, 2 and 8 batches)
    for bad in ([32, 16], [0, 32], [32, 512]):
        with pytest.raises(ValueError, match="label_counts must rise strictly"):
            nd.label_count_runs(str(tmp_path), bad, 1, 32, seed=[0])


def test_a_held_out_split_is_scored_once_for_the_model_selected_on_validation(tiny_world):
    """Newell & Deng's selection: the test split is scored for one model, the evaluation with the best validation
    accuracy (the earliest of ties), and nd.selected_metric reads that row back."""
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    test = load_task_data(tiny_world / "classify_val.npz", "classify")
    history = fit(new_model(data, "resnet9", 8, "gn", seed=0), data, data,
                  TrainConfig(epochs_1x=2, batch_size=64, evals=3, progress=False), test=test)
    val = [(r["value"], -r["step"]) for r in history if r["split"] == "val" and r["metric"] == "accuracy"]
    selected = -max(val)[1]
    assert [r["step"] for r in history if r["split"] == "test" and r["metric"] == "accuracy"] == [selected]
    rows = pd.DataFrame(history).assign(run_id="r")
    assert nd.selected_metric(rows, "accuracy").step.tolist() == [selected]
