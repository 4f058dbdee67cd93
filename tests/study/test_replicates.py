"""A pre-training per seed (protocol v2): each seed's runs start from that seed's own checkpoints, whose gates they
inherit, and every effect counts the checkpoints behind it."""
from __future__ import annotations

import copy

import pandas as pd
import yaml

from rethink import config as study_config
from rethink.study import gates
from rethink.study.records import checkpoint_files, seeded

CONFIG = {**yaml.safe_load(study_config.CONFIG.read_text()), **yaml.safe_load(study_config.PROTOCOL.read_text())}


def test_each_notebook_reads_one_checkpoint_per_need_and_seed():
    profile = study_config.resolve(copy.deepcopy(CONFIG), "default")
    seeds = profile["notebooks"]["05_zo3_zo5_self_training"]["seeds"]
    assert len(seeds) >= 5 and min(seeds) >= 100  # fresh seeds, never the exploration's 0-2
    assert study_config.notebook_checkpoints(profile, "05_zo3_zo5_self_training") == \
        [f"upstream-seed{k}.pt" for k in seeds] + [f"simclr-seed{k}.pt" for k in seeds]
    assert study_config.notebook_checkpoints(profile, "08_bl2_iterated_self_training") == []
    parameters = study_config.notebook_config(profile, "04_zo1_zo2_augmentation_data", root=".")
    assert parameters["upstream_checkpoint"] == "cache/default/checkpoints/upstream-seed{seed}.pt"


def test_a_template_is_filled_per_seed_and_a_plain_path_is_shared():
    assert seeded("c/upstream-seed{seed}.pt", 103) == "c/upstream-seed103.pt"
    assert seeded("c/upstream.pt", 103) == "c/upstream.pt" and seeded(None, 1) is None
    files = checkpoint_files({"simclr": "c/simclr-seed{seed}.pt", "old": "c/old.pt"}, [100, 101])
    assert files == {"simclr (seed 100)": "c/simclr-seed100.pt", "simclr (seed 101)": "c/simclr-seed101.pt",
                     "old": "c/old.pt"}
    assert [gates.split_seed(name) for name in files] == [("simclr", 100), ("simclr", 101), ("old", None)]
    assert gates.split_seed("rotation (resnet18, width 16) (seed 7)") == ("rotation (resnet18, width 16)", 7)


def _runs(checkpoints: list[str | None]) -> pd.DataFrame:
    """One pre-trained run per seed, each with two validation evaluations."""
    rows = []
    for seed, checkpoint in enumerate(checkpoints):
        for step in (1, 2):
            for split, metric, value in (("train", "loss", 0.5), ("val", "accuracy", 60.0)):
                rows.append(dict(run_id=f"seed={seed}", arm="pretrained", init="pretrained", seed=seed, step=step,
                                 epoch=step, split=split, metric=metric, value=value, checkpoint=checkpoint))
    return pd.DataFrame(rows)


def test_each_run_inherits_its_own_seeds_pretraining_gate():
    checkpoint_gates = {"pretrained (seed 0)": dict(value=1.0, threshold=2.0, passed=True, note="upstream 95%"),
                        "pretrained (seed 1)": dict(value=3.0, threshold=2.0, passed=False, note="upstream 40%")}
    thresholds = dict(learned_loss_factor=0.9, learned_min_above_chance=5, min_evals=2, min_evals_after_drop=2,
                      converged_tolerance=1.0)
    table = gates.run_gates(_runs(["upstream-seed0", "upstream-seed1"]), thresholds, 10,
                            checkpoints=checkpoint_gates, checkpoint_of=gates.checkpoint_by_init)
    inherited = table[(table.gate == "pretraining") & (table.experiment.isna())].set_index("seed").passed
    assert inherited.to_dict() == {0: True, 1: False}
    own = table[table.experiment == gates.PRETRAINING]
    assert set(own.arm) == {"pretrained"} and sorted(own.seed) == [0, 1]  # one pre-training arm, a row per seed
    [arm] = gates.arm_gates(table, {"arm": "pretrained", "experiment": gates.PRETRAINING})
    assert not arm["passed"] and arm["worst_seed"] == 1 and arm["failed_runs"] == 1
    assert gates.pretraining_replicates(table, [{"arm": "pretrained"}]) == 2


def test_replicates_are_counted_from_the_checkpoint_column():
    assert gates.per_seed_pretraining(_runs(["upstream-seed0", "upstream-seed1"]))
    assert not gates.per_seed_pretraining(_runs(["upstream", "upstream"]))  # one checkpoint shared by every seed
    assert not gates.per_seed_pretraining(_runs([None, None]).drop(columns="checkpoint"))  # the exploration's
    shared = gates.run_gates(_runs(["upstream", "upstream"]), dict(learned_loss_factor=0.9, learned_min_above_chance=5,
                             min_evals=2, min_evals_after_drop=2, converged_tolerance=1.0), 10)
    assert gates.pretraining_replicates(shared, [{"arm": "pretrained"}]) == 1
    old = gates.run_gates(_runs([None, None]).drop(columns="checkpoint"), dict(
        learned_loss_factor=0.9, learned_min_above_chance=5, min_evals=2, min_evals_after_drop=2,
        converged_tolerance=1.0), 10)
    assert gates.pretraining_replicates(old, [{"arm": "pretrained"}]) == 1
