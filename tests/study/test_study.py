import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from rethink.core.training import selftrain
from rethink.report import pages, tables, words
from rethink.study import effects, gates, he, records, runs, zo
from rethink.core.data import world as W
from rethink.core.training.config import TrainConfig


def test_runs_are_cached_by_everything_that_decides_them(tiny_world, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs_1x=1, batch_size=64, evals=1, progress=False)
    kwargs = dict(train_file=str(tiny_world / "classify_train.npz"), val_file=str(tiny_world / "classify_val.npz"),
                  task="classify", init="scratch", checkpoint=None, runs_dir=str(tmp_path),
                  model=dict(arch="resnet9", width=8, norm="gn"), label_fraction=1.0, desc="test")
    digest, first = runs.run_arm(train=cfg, **kwargs)
    assert first[-1]["metric"] == "seconds" and first[-1]["value"] > 0  # what the run cost travels with it
    assert (tmp_path / f"{digest}.pt").is_file()  # its weights, for a student that takes it as teacher
    calls = []
    fake = [dict(step=1, epoch=1.0, split="val", metric="accuracy", value=0.5)]
    monkeypatch.setattr(selftrain, "fit", lambda *a, **k: calls.append(1) or fake)
    assert runs.run_arm(train=cfg, **kwargs) == (digest, first) and not calls  # read back, not retrained
    other, rows = runs.run_arm(train=dataclasses.replace(cfg, lr=0.05), **kwargs)
    assert other != digest and rows[0] == fake[0] and calls  # a new run
    assert len(list(tmp_path.glob("*.json"))) == 2
    # A corrupted cached run (a half-written record, or weights) is discarded and trained again, not loaded.
    calls.clear()
    (tmp_path / f"{digest}.json").write_text('{"key": {}, "hist')
    _, again = runs.run_arm(train=cfg, **kwargs)
    assert calls and again[0] == fake[0] and (tmp_path / f"{digest}.pt").is_file()
    calls.clear()
    (tmp_path / f"{digest}.pt").write_bytes(b"not a torch file")
    runs.run_arm(train=cfg, **kwargs)
    assert calls


def test_the_same_run_trained_into_two_empty_caches_gives_the_same_numbers(tiny_world, tmp_path):
    """Determinism from an empty cache: the run is trained twice (nothing read back) to byte-identical rows, timing
    aside, and identical weights; another seed gives other numbers, so the comparison can tell."""
    import json

    import torch

    kwargs = dict(train_file=str(tiny_world / "classify_train.npz"), val_file=str(tiny_world / "classify_val.npz"),
                  task="classify", init="scratch", checkpoint=None, model=dict(arch="resnet9", width=8, norm="gn"),
                  label_fraction=1.0, desc="test")
    cfg = TrainConfig(epochs_1x=1, batch_size=64, evals=2, progress=False, seed=5)
    numbers = lambda rows: json.dumps([r for r in rows if r["metric"] != "seconds"])
    first, rows_a = runs.run_arm(train=cfg, runs_dir=str(tmp_path / "a"), **kwargs)
    second, rows_b = runs.run_arm(train=cfg, runs_dir=str(tmp_path / "b"), **kwargs)
    assert first == second and numbers(rows_a) == numbers(rows_b)
    weights = [torch.load(tmp_path / d / f"{first}.pt", weights_only=False) for d in ("a", "b")]
    state = [w["state_dict"] if "state_dict" in w else w for w in weights]
    assert state[0].keys() == state[1].keys() and all(torch.equal(state[0][k], state[1][k]) for k in state[0])
    _, rows_c = runs.run_arm(train=dataclasses.replace(cfg, seed=6), runs_dir=str(tmp_path / "c"), **kwargs)
    assert numbers(rows_c) != numbers(rows_a)


@pytest.mark.parametrize("kind", ["missing", "corrupted"])
def test_a_bad_cache_file_names_the_command_that_rebuilds_it(tmp_path, kind):
    from rethink.core.training.checkpoints import load_checkpoint
    folder = tmp_path / "cache" / "smoke" / "world"
    folder.mkdir(parents=True)
    world, checkpoint = folder / "upstream_classify_train.npz", tmp_path / "cache" / "smoke" / "upstream.pt"
    if kind == "corrupted":
        world.write_bytes(b"PK\x03\x04 half an archive")
        checkpoint.write_bytes(b"\x80\x02 half a checkpoint")
    command = "snakemake --cores 2 --config profile=smoke --force cache/smoke/"
    with pytest.raises((FileNotFoundError, ValueError), match=command + "world/upstream_classify_train.npz"):
        W.load_world(world)
    with pytest.raises((FileNotFoundError, ValueError), match=command + "upstream.pt"):
        load_checkpoint(checkpoint)


def constructed(cells, metric="AP", seeds=range(4)):
    """Tidy final-evaluation rows: cells maps (arm, schedule, label_fraction) -> mean value; seeds add a
    shared offset (so paired gaps are tight) and a little noise."""
    rows = []
    for (arm, schedule, fraction), value in cells.items():
        for seed in seeds:
            rows.append(dict(run_id=f"{arm} {schedule} {fraction} {seed}", arm=arm, schedule=float(schedule),
                             label_fraction=fraction, seed=seed, step=10, epoch=1.0, split="val", metric=metric,
                             value=value + seed + 0.1 * (seed % 2)))
    return pd.DataFrame(rows)


def directional(name, op=">", delta=1.0, primary=False):
    """A directional condition as config/study.yaml writes one (values chosen for the test)."""
    return dict(name=name, op=op, value=0.0, delta=delta, delta_source="test", primary=primary)


def bound(name, op, value, primary=False):
    return dict(name=name, op=op, value=value, primary=primary)


HE1 = {"conditions": [bound("gap_longest", "abs<=", 2.0, primary=True), directional("gap_shortest")]}


def test_he1_verdict_from_constructed_results():
    results = constructed({("scratch", 1, 1.0): 50, ("pretrained", 1, 1.0): 90, ("scratch", 6, 1.0): 80,
                           ("pretrained", 6, 1.0): 80.2}, metric="accuracy")
    finding = he.he1_finding(results, "accuracy", HE1, "test")
    assert finding["verdict"] == "reproduced"
    assert [(c["name"], c["label"]) for c in finding["conditions"]] == [
        ("gap_longest", "pretrained − scratch accuracy at 6x"), ("gap_shortest", "pretrained − scratch accuracy at 1x")]
    # Whether each arm still gains from the longest-but-one schedule to the longest: 1x -> 6x here, shown beside it.
    assert {g["arm"]: round(g["estimate"], 1) for g in finding["schedule_gains"]} == {"pretrained": -9.8, "scratch": 30.0}
    tight = {"conditions": [bound("gap_longest", "abs<=", 0.1, primary=True), directional("gap_shortest")]}
    assert he.he1_finding(results, "accuracy", tight, "test")["verdict"] == "not reproduced"  # 0.2-point gap > 0.1


HE2 = {"conditions": [bound("ap75_gap", ">", -1.0, primary=True)]}


def test_he2_judges_ap75_at_the_longest_schedule():
    cells = {("scratch", 1, 1.0): 10, ("pretrained", 1, 1.0): 30, ("scratch", 4, 1.0): 40, ("pretrained", 4, 1.0): 39}
    results = pd.concat([constructed(cells, metric) for metric in ("AP", "AP50", "AP75")])
    finding = he.he2_finding(results, HE2, "test")
    assert finding["verdict"] == "reproduced"
    assert finding["effect"]["estimate"] == pytest.approx(1.0, abs=0.1)  # scratch − pretrained at 4x
    worse = pd.concat([constructed({**cells, ("scratch", 4, 1.0): 35}, metric) for metric in ("AP", "AP50", "AP75")])
    assert he.he2_finding(worse, HE2, "test")["verdict"] == "not reproduced"
    # Scores on the held-out scenes, where the runs have them, decide over the validation scenes'.
    held_out = pd.concat([results, worse[worse.metric == "AP75"].assign(split="test")])
    finding = he.he2_finding(held_out, HE2, "test")
    assert finding["verdict"] == "not reproduced" and "held-out scenes" in finding["criterion"]["text"]


def test_best_schedule_is_chosen_per_arm_and_data_size():
    final = constructed({("scratch", 1, 0.1): 10, ("scratch", 4, 0.1): 20, ("pretrained", 1, 0.1): 25,
                         ("pretrained", 4, 0.1): 15})
    best = he.best_schedule(final)
    assert dict(best.groupby("arm").schedule.first()) == {"pretrained": 1.0, "scratch": 4.0}
    assert len(best) == 2 * 4  # one schedule per arm, every seed


def test_he3_catches_up_at_the_named_size_but_not_at_the_smallest():
    cells = {}
    for fraction, scratch, pretrained in ((1.0, 40, 40.5), (0.1, 30, 30.5), (0.03, 5, 15)):
        cells |= {("scratch", 1, fraction): scratch - 10, ("scratch", 4, fraction): scratch,  # scratch needs 4x
                  ("pretrained", 1, fraction): pretrained, ("pretrained", 4, fraction): pretrained - 3}
    he3 = {"catchup_fraction": 0.1,
           "conditions": [directional("gap_smallest", primary=True), bound("gap_catchup", "abs<=", 2.0)]}
    finding = he.he3_finding(constructed(cells), he3, "test")
    assert finding["verdict"] == "reproduced"
    assert [c["name"] for c in finding["conditions"]] == ["gap_smallest", "gap_catchup"]
    assert finding["conditions"][0]["estimate"] == pytest.approx(10, abs=0.1)
    assert finding["conditions"][1]["status"] == "met"
    with pytest.raises(ValueError, match="HE-3's catchup_fraction 0.2 must be one of the label_fractions"):
        he.he3_finding(constructed(cells), {**he3, "catchup_fraction": 0.2}, "test")


HE4 = {"conditions": [directional("gn_minus_bn", primary=True)]}


def test_he4_compares_gn_with_small_batch_bn():
    results = constructed({("gn", 4, 1.0): 30, ("bn", 4, 1.0): 20, ("none", 4, 1.0): 25})
    finding = he.he4_finding(results, HE4, "test")
    assert finding["verdict"] == "reproduced" and finding["effect"]["estimate"] == pytest.approx(10, abs=0.1)
    flipped = constructed({("gn", 4, 1.0): 20, ("bn", 4, 1.0): 30})
    assert he.he4_finding(flipped, HE4, "test")["verdict"] == "not reproduced"


def test_grid_and_norm_runs():
    assert runs.grid(init=["a", "b"], seed=[0, 1]) == [
        dict(init="a", seed=0), dict(init="a", seed=1), dict(init="b", seed=0), dict(init="b", seed=1)]
    arms = he.norm_runs(["gn", "bn", "syncbn"], [0], bn_batch=2)
    assert [(r["arm"], r["norm"], r.get("bn_batch")) for r in arms] == [("gn", "gn", None), ("bn", "bn", 2),
                                                                       ("syncbn", "bn", 0)]
    with pytest.raises(ValueError, match="norms.*allowed"):
        he.norm_runs(["ln"], [0], 2)


def test_fixed_iteration_runs_keep_the_step_count(tmp_path):
    W.save_world(tmp_path / "downstream_scenes_train.npz",
                 W.generate_scenes(200, W.DOWNSTREAM_CLASSES[:2], W.WorldSpec(image_size=32), seed=0, max_objects=1))
    runs = he.fixed_iteration_runs(str(tmp_path), "detect", [1.0, 0.25], [1], [0], ["scratch"], epochs_1x=2,
                                      batch_size=16)
    full, quarter = runs
    assert full["epochs_1x"] == 2  # the full set keeps HE-1's settings: one cache entry
    steps = lambda run, n: round(run["epochs_1x"] * (n // 16))
    assert steps(full, 200) == steps(quarter, 50) == 24
    with pytest.raises(ValueError, match="label_fraction"):
        he.fixed_iteration_runs(str(tmp_path), "detect", [0.0], [1], [0], ["scratch"], 2, 16)


@pytest.fixture()
def study_world(tiny_world, tmp_path):
    """tiny_world under the names the 'world' rule gives its files (its validation files stand in for the
    held-out test splits)."""
    for kind in ("classify", "scenes"):
        for split, source in (("train", "train"), ("val", "val"), ("test", "val")):
            (tmp_path / f"downstream_{kind}_{split}.npz").symlink_to(tiny_world / f"{kind}_{source}.npz")
    return tmp_path


def test_sweep_rejects_an_unknown_setting_before_training(study_world, monkeypatch):
    monkeypatch.setattr(selftrain, "fit", lambda *a, **k: pytest.fail("trained before checking the settings"))
    where = dict(world_dir=str(study_world), upstream_checkpoint="none.pt", runs_dir=str(study_world / "runs"))
    with pytest.raises(ValueError, match="unknown run settings.*depth"):
        runs.sweep([dict(seed=0), dict(depth=50)], where, task="classify", arch="resnet9", width=8, norm="gn")
    with pytest.raises(ValueError, match="aug"):
        runs.sweep([dict(seed=0), dict(aug="S9")], where, task="classify", arch="resnet9", width=8, norm="gn")


def test_sweep_trains_detection_arms_into_tidy_rows(study_world):
    arms = he.norm_runs(["gn", "bn"], [0], bn_batch=2)
    # A notebook's settings: the sweep takes the run keys it has (and its world and caches), ignores the rest.
    settings = dict(world_dir=str(study_world), upstream_checkpoint="none.pt", runs_dir=str(study_world / "runs"),
                    arch="resnet9", width=8, norm="gn", epochs_1x=1, schedule=1, batch_size=16, lr=0.02,
                    grad_clip=5.0, evals=1, seeds=[0], norms=["gn", "bn"])
    results = runs.sweep(arms, settings, task="detect")
    assert set(results.arm) == {"gn", "bn"}
    assert {"AP", "AP50", "AP75", "loss", "seconds"} <= set(results.metric)
    final = effects.final_metric(results, "AP")
    assert len(final) == 2 and final.value.between(0, 100).all()  # points, not fractions
    assert {"run_id", "seed", "step", "epoch", "split", "norm", "bn_batch"} <= set(results.columns)
    # The final model scored on the held-out scenes, once: kept beside the run (the run itself is not retrained,
    # its key is unchanged), and read back the next time.
    again = lambda: runs.sweep([dict(arms[0], held_out="final")], settings, task="detect")
    scored = again()
    assert len(list((study_world / "runs").glob("*.json"))) == 2 and set(scored.run_id) == {"arm=gn norm=gn seed=0"}
    test = scored[scored.split == "test"].set_index("metric").value
    assert set(test.index) == {"loss", "AP", "AP50", "AP75"} and test["AP"] == final[final.arm == "gn"].value.item()
    assert again().equals(scored)
    with pytest.raises(ValueError, match="held_out must be"):
        runs.sweep([dict(arms[0], held_out="every")], settings, task="detect")


def test_a_diverged_run_is_recorded_as_scoring_zero(study_world, monkeypatch):
    from rethink.core.training.loop import Diverged

    def diverge(*args, **kwargs):
        raise Diverged("loss became nan", 7, 0.5, [dict(step=4, epoch=0.25, split="train", metric="loss", value=2.0)])

    monkeypatch.setattr(selftrain, "fit", diverge)
    results = runs.sweep([dict(seed=0)], dict(world_dir=str(study_world), upstream_checkpoint="none.pt",
                                              runs_dir=str(study_world / "runs")),
                         task="detect", arch="resnet9", width=8, norm="none", epochs_1x=1)
    final = effects.final_metric(results, "AP75")
    assert final.value.tolist() == [0.0] and final.step.tolist() == [7]
    assert results[results.metric == "diverged"].value.tolist() == [1.0]


def test_the_verdict_sentence_follows_the_computed_verdict():
    held = he.he4_finding(constructed({("gn", 4, 1.0): 30, ("bn", 4, 1.0): 20}), HE4, "test")
    failed = he.he4_finding(constructed({("gn", 4, 1.0): 20, ("bn", 4, 1.0): 30}), HE4, "test")
    noisy = constructed({("gn", 4, 1.0): 20, ("bn", 4, 1.0): 20})
    noisy.loc[noisy.arm == "gn", "value"] += [3, -3, 4, -2]
    undecided = he.he4_finding(noisy, HE4, "test")
    assert pages.verdict_sentence(held).startswith("The finding held")
    assert pages.verdict_sentence(failed).startswith("The finding did not hold") and "short of δ" in \
        pages.verdict_sentence(failed)
    assert undecided["verdict"] == "inconclusive"
    assert "minimum detectable effect" in pages.verdict_sentence(undecided)
    assert "seeds at the observed sd" in pages.verdict_sentence(undecided)


def zo_results(cells, seeds=range(3)):
    """Final accuracies: cells maps (arm, aug, label_fraction) -> mean; each seed adds a shared offset."""
    return pd.DataFrame([dict(run_id=f"{arm} {aug} {fraction} {seed}", arm=arm, aug=aug, label_fraction=fraction,
                              seed=seed, step=10, epoch=1.0, split="val", metric="accuracy",
                              value=value + seed + 0.05 * (seed % 2))
                         for (arm, aug, fraction), value in cells.items() for seed in seeds])


def zoph_grid(gain, scratch=lambda aug, fraction: 70.0):
    """scratch and pretrained in a 2 x 2 grid; gain(aug, fraction) = pretrained − scratch."""
    cells = {}
    for aug in ("S1", "S4"):
        for fraction in (0.2, 1.0):
            cells[("scratch", aug, fraction)] = scratch(aug, fraction)
            cells[("pretrained", aug, fraction)] = scratch(aug, fraction) + gain(aug, fraction)
    return cells


ZO1 = {"precondition": {"op": ">", "value": 0.0},
       "conditions": [directional("change_fewest", "<", primary=True), directional("gain_strongest_all", "<"),
                      directional("change_all", "<")]}
ZO2 = {"conditions": [directional("change_strongest", "<", primary=True), directional("gain_fewest")]}
# The strongest level helps scratch with few labels (the premise of ZO-1), as in the exploration's 5% cell.
HELPS_SCRATCH = lambda aug, fraction: 75.0 if (aug, fraction) == ("S4", 0.2) else 70.0
PAPER_LIKE = lambda aug, f: {("S1", 0.2): 5, ("S1", 1.0): 2, ("S4", 0.2): 3, ("S4", 1.0): -1}[aug, f]


def test_zo1_and_zo2_verdicts_from_constructed_grids():
    paper_like = zo_results(zoph_grid(PAPER_LIKE, HELPS_SCRATCH))
    zo1 = gates.apply_gates(zo.zo1_finding(paper_like, ZO1, "test"), None)
    assert zo1["verdict"] == "reproduced" and zo1["precondition"]["held"]
    assert {c["name"]: round(c["estimate"], 2) for c in zo1["conditions"]} == {
        "change_fewest": -2.0, "gain_strongest_all": -1.0, "change_all": -3.0}
    zo2 = zo.zo2_finding(paper_like, ZO2, "test")
    assert zo2["verdict"] == "reproduced" and zo2["effect"]["estimate"] == pytest.approx(-4.0)
    always_helps = zo_results(zoph_grid(lambda aug, f: 4.0 if aug == "S4" else 1.0, HELPS_SCRATCH))
    assert zo.zo1_finding(always_helps, ZO1, "test")["verdict"] == "not reproduced"
    assert zo.zo2_finding(always_helps, ZO2, "test")["verdict"] == "not reproduced"  # the gain never shrinks


def test_zo1_is_not_tested_where_its_premise_fails():
    # Scratch gains nothing from the strongest level with few labels: the primary condition cannot be read.
    flat = gates.apply_gates(zo.zo1_finding(zo_results(zoph_grid(PAPER_LIKE)), ZO1, "test"), None)
    assert flat["verdict"] == "not tested" and not flat["precondition"]["held"]
    assert flat["because"]["kind"] == "gate_failed" and flat["because"]["gate"] == "precondition"
    assert "the precondition gate failed" in words.reason_text(flat["because"])
    assert [c["status"] for c in flat["conditions"]] == ["not tested", "met", "met"]  # the 100% cell still shows


def test_zo3_judges_the_mean_gain_over_its_three_cells():
    cells = zoph_grid(lambda aug, f: 1.0)
    for init, aug, fraction in zo.zo3_cells(["S1", "S4"], [0.2, 1.0]):
        cells[(init + zo.STUDENT, aug, fraction)] = cells[(init, aug, fraction)] + {0.2: 4.0, 1.0: 1.0}[fraction]
    cells[("scratch" + zo.STUDENT, "S1", 1.0)] = 0.0  # a student outside ZO-3's cells counts for nothing
    zo3 = {"conditions": [directional("student_gain", primary=True)]}
    finding = zo.zo3_finding(zo_results(cells), zo3, "test")
    (condition,) = finding["conditions"]
    assert condition["name"] == "student_gain" and condition["estimate"] == pytest.approx(2.0)  # (1 + 1 + 4) / 3
    assert finding["verdict"] == "reproduced"
    assert [round(c["estimate"], 2) for c in finding["cell_gains"]] == [1.0, 1.0, 4.0]
    assert {(a["arm"], a["aug"], a["label_fraction"]) for a in condition["arms"]} == {
        ("scratch+ST", "S4", 1.0), ("scratch", "S4", 1.0), ("pretrained+ST", "S4", 1.0), ("pretrained", "S4", 1.0),
        ("scratch+ST", "S4", 0.2), ("scratch", "S4", 0.2)}
    cells[("pretrained+ST", "S4", 1.0)] = cells[("pretrained", "S4", 1.0)] - 9.0  # hurts enough to pull the mean below 0
    assert zo.zo3_finding(zo_results(cells), zo3, "test")["verdict"] == "not reproduced"


def test_zo4_judges_simclr_against_scratch_at_the_strongest_level_with_all_labels():
    """SimCLR 2 points under scratch at (S4, 100%) and its student 2 over it there: both conditions met, whatever
    SimCLR does in the other cells (here: 5 points over scratch at S1 and at 20%)."""
    cells = zoph_grid(lambda aug, f: 1.0)
    for aug in ("S1", "S4"):
        for fraction in (0.2, 1.0):
            at_corner = (aug, fraction) == ("S4", 1.0)
            cells[("simclr", aug, fraction)] = cells[("scratch", aug, fraction)] + (-2.0 if at_corner else 5.0)
    cells[("simclr+ST", "S4", 1.0)] = cells[("simclr", "S4", 1.0)] + 2.0
    zo4 = {"conditions": [directional("simclr_gain", "<", primary=True), directional("student_gain", delta=1.3)]}
    finding = zo.zo4_finding(zo_results(cells), zo4, "test")
    assert {c["name"]: round(c["estimate"], 6) for c in finding["conditions"]} == {"simclr_gain": -2.0,
                                                                                    "student_gain": 2.0}
    assert finding["verdict"] == "reproduced" and [c["status"] for c in finding["conditions"]] == ["met", "met"]
    cells[("simclr", "S4", 1.0)] = cells[("scratch", "S4", 1.0)] + 0.5  # no harm: under delta, on the wrong side
    cells[("simclr+ST", "S4", 1.0)] = cells[("simclr", "S4", 1.0)] + 2.0
    assert zo.zo4_finding(zo_results(cells), zo4, "test")["verdict"] == "not reproduced"


def test_zo5_judges_each_step_of_pretraining_joint_training_and_self_training():
    cells = {("pretrained", "S1", 0.2): 80.0, ("pretrained+joint", "S1", 0.2): 81.5,
             ("pretrained+joint+ST", "S1", 0.2): 83.0}
    zo5 = {"aug": "S1", "label_fraction": 0.2,
           "conditions": [directional("joint_gain", primary=True), directional("selftraining_gain")]}
    finding = zo.zo5_finding(zo_results(cells), zo5, "test")
    assert {c["name"]: round(c["estimate"], 2) for c in finding["conditions"]} == {
        "joint_gain": 1.5, "selftraining_gain": 1.5}
    assert finding["verdict"] == "reproduced"
    # The paper's effect stands beside ours, in our unit, under the verdict.
    text = pages.verdict_markdown([finding])
    assert "The paper's effect against ours: + joint training, then + self-training: each step positive" in text
    assert "+1.50 [+1.50, +1.50] accuracy points (ours)" in text
    cells[("pretrained+joint+ST", "S1", 0.2)] = 79.0  # self-training on top hurts: a secondary condition fails
    finding = zo.zo5_finding(zo_results(cells), zo5, "test")
    assert finding["verdict"] == "reproduced" and finding["conditions"][1]["status"] == "failed"


def test_cell_gains_pair_by_seed_and_skip_missing_arms():
    results = zo_results({("scratch", "S1", 1.0): 50, ("pretrained", "S1", 1.0): 53, ("scratch", "S4", 1.0): 40})
    gains = zo.cell_gains(effects.final_metric(results, "accuracy"), {"gain": ("pretrained", "scratch")})
    assert set(gains.aug) == {"S1"} and gains.value.round(6).tolist() == [3.0, 3.0, 3.0]
    table = tables.gain_table(gains)
    assert table.loc[("gain", "S1"), "100% labels"] == "3.0 ± 0.0"


def test_zo_runs_give_each_level_its_schedule_and_derive_students(tmp_path):
    W.save_world(tmp_path / "downstream_classify_train.npz",
                 W.generate_classification(100, W.DOWNSTREAM_CLASSES[:2], W.WorldSpec(image_size=32), seed=0))
    teachers = zo.zo_runs(str(tmp_path), [0.2, 1.0], ["S1", "S4"], [0, 1], ["scratch", "pretrained"],
                          epochs_1x={"S1": 2, "S4": 3}, batch_size=10)
    assert len(teachers) == 2 * 2 * 2 * 2 and all("method" not in r for r in teachers)
    assert {(r["aug"], r["label_fraction"], r["epochs_1x"]) for r in teachers} == {
        ("S1", 1.0, 2), ("S1", 0.2, 10.0), ("S4", 1.0, 3), ("S4", 0.2, 15.0)}  # as many steps as 100%, per level
    cells = zo.zo3_cells(["S1", "S4"], [0.2, 1.0])
    students = zo.derived_runs(teachers, cells, {"{init}+ST": dict(method="noisy_student")})
    assert len(students) == len(cells) * 2 and {r["arm"] for r in students} == {"scratch+ST", "pretrained+ST"}
    assert all(r["aug"] == "S4" and r["method"] == "noisy_student" for r in students)
    joint = zo.derived_runs(teachers, [("pretrained", "S1", 0.2)], zo.ZO5_ARMS)
    assert sorted(r["arm"] for r in joint) == ["pretrained+joint", "pretrained+joint", "pretrained+joint+ST",
                                              "pretrained+joint+ST"]
    assert {r["epochs_1x"] for r in joint} == {10.0}  # the teacher's schedule
    with pytest.raises(ValueError, match="no value for augmentation level 'S4'"):
        zo.zo_runs(str(tmp_path), [1.0], ["S4"], [0], ["scratch"], epochs_1x={"S1": 2}, batch_size=10)


def test_the_gain_figure_legend_names_every_series():
    """ZO-4's figure: the self-training comparison runs in one panel only; the legend must still name it."""
    from rethink.report import figures

    rows = [dict(aug=aug, label_fraction=1.0, comparison=name, seed=seed, value=1.0 + seed)
            for aug in ("S1", "S4") for name in ("simclr − scratch", "pretrained − scratch") for seed in range(3)]
    rows += [dict(aug="S4", label_fraction=1.0, comparison="self-training on simclr", seed=s, value=2.0) for s in range(3)]
    fig = figures.gain_bars(pd.DataFrame(rows), "test")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "simclr − scratch", "pretrained − scratch", "self-training on simclr"]


def test_the_curves_legend_names_every_panels_arms():
    """ZO-5's curves: the joint arms run in one cell only, the SimCLR arms in another; a self-supervised arm is
    named by its method's display name."""
    from rethink.report import figures

    rows = [dict(cell=cell, arm=arm, seed=seed, step=step, split="val", metric="accuracy", value=80.0 + step)
            for cell, arms in (("S1_5%", ("pretrained", "pretrained+joint")), ("S2_100%", ("scratch", "simclr")))
            for arm in arms for seed in range(2) for step in (1, 2)]
    fig = figures.training_curves(pd.DataFrame(rows), "accuracy", panel="cell", x="step")
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == [
        "SimCLR", "pretrained", "pretrained+joint", "scratch"]


def test_figures_are_numbered_in_order_and_keep_their_number(tmp_path, monkeypatch):
    """A captioned figure is shown with "Figure N." under it; N follows the order of first saves, and a re-run
    cell (the same file saved again) keeps its number."""
    import IPython.display
    import matplotlib.pyplot as plt
    from rethink.report import figures

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monkeypatch.setattr(figures, "FIGURE_NUMBERS", {})
    for name in ("a.png", "b.png", "a.png"):
        assert figures.save(plt.figure(), tmp_path / name, caption=f"about {name}") is None  # no cell output
    figures.save(plt.figure(), tmp_path / "c.png")  # no caption: written, not numbered
    assert figures.FIGURE_NUMBERS == {"a.png": 1, "b.png": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]
    captions = [item.data for item in shown if isinstance(item, IPython.display.Markdown)]
    assert captions == ["**Figure 1.** about a.png", "**Figure 2.** about b.png", "**Figure 1.** about a.png"]
    assert sum(isinstance(item, plt.Figure) for item in shown) == 3  # each figure above its caption


def test_every_notebook_figure_has_a_caption_and_the_paper_is_linked():
    """Reports number and caption every figure, and cite their paper by arXiv link."""
    from pathlib import Path

    for path in sorted((Path(__file__).parents[2] / "notebooks").glob("0*.py")):
        text = path.read_text()
        assert text.count("figures.save(") == text.count("caption=") > 0, path.name
        assert "https://arxiv.org/abs/" in text.split("# %% tags")[0], path.name


def test_a_curves_band_stays_inside_the_metrics_range():
    """Three seeds with one dip give a t-interval past 100 points: the band is drawn inside [0, 100]."""
    from rethink.report import figures

    rows = [dict(cell="S1_5%", arm="pretrained", seed=seed, step=step, split="val", metric="accuracy",
                 value=30.0 if (seed, step) == (0, 2) else 90.0) for seed in range(3) for step in (1, 2, 3)]
    fig = figures.training_curves(pd.DataFrame(rows), "accuracy", panel="cell", x="step")
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() <= 100 and band.min() >= 0 and band.max() == 100


def test_results_keep_each_checkpoints_pretraining_curve_for_its_figure(tmp_path):
    """checkpoints.csv holds each checkpoint's final numbers, pretraining.csv its pretext loss per epoch; the
    figure draws a chance and a gate line where the method has a chance loss, none for the autoencoder."""
    import json
    import math

    from rethink.report import figures
    from rethink.study import gates

    for name, losses in (("rotation", [1.4, 1.2]), ("autoencoder", [0.05, 0.02])):
        history = [dict(step=i, epoch=i, split="train", metric=f"{name}_loss", value=v) for i, v in enumerate(losses, 1)]
        (tmp_path / f"{name}.json").write_text(json.dumps({"val": {"loss": losses[-1], "nn_accuracy": 0.5},
                                                            "history": history}))
    out = tmp_path / "report"
    records.write_results(str(out), pd.DataFrame([dict(run_id="r", value=1.0)]), {"device": "cpu"},
                          checkpoints={m: str(tmp_path / f"{m}.pt") for m in ("rotation", "autoencoder")})
    curves = pd.read_csv(out / "pretraining.csv")
    assert curves.groupby("checkpoint").value.apply(list).to_dict() == {"autoencoder": [0.05, 0.02],
                                                                        "rotation": [1.4, 1.2]}
    parameters = dict(selfsup_methods=["rotation", "autoencoder"], selfsup_options={}, selfsup_batch_size=256,
                      n_upstream_classes=10)
    chances = gates.checkpoint_chances(curves.checkpoint.unique(), parameters)
    assert chances == {"rotation": pytest.approx(math.log(4)), "autoencoder": None}
    fig = figures.pretraining_losses(curves, chances, 0.9)
    assert [len(ax.lines) for ax in fig.axes] == [3, 1]  # rotation: curve, chance and gate; autoencoder: curve


def test_a_run_cache_file_is_replaced_whole_or_not_at_all(tmp_path):
    """Two notebooks that share a run may train it at once: a reader sees the old file or the new, never half;
    a write that fails leaves the old file and no temporary behind."""
    from rethink.study.runs import write_atomically

    target = tmp_path / "run.json"
    target.write_text("old")
    write_atomically(target, lambda tmp: Path(tmp).write_text("new"))
    assert target.read_text() == "new"

    def broken(tmp):
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, broken)
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["run.json"]
