"""Real datasets by configuration alone: the `world` rule writes the world files from CIFAR-10, STL-10, an
ImageFolder tree and COCO (tiny fixtures in those exact formats) and scikit-learn's digits (a real image set),
and notebooks run on them unchanged."""
import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import write_cifar10, write_coco, write_image_folder, write_stl10
from helpers import CONFIG, VERDICTS, failed_job_logs, snakemake

from rethink import config as study_config
from rethink.core.data.tasks import load_task_data
from rethink.core.data.world import load_world
from rethink.pipeline.data import HELD_OUT, WORLD_FILES, build_data, kept, real_pool, world_names

SMOKE_WORLD = study_config.resolve(copy.deepcopy(CONFIG), "smoke")["world"]


def cifar_stl_data(root) -> dict:
    cifar, stl = write_cifar10(root, n_per_class=6), write_stl10(root, n_unlabeled=12)
    return {"upstream": {"format": "cifar10", "path": str(cifar), "classes": ["airplane", "automobile", "bird"]},
            "downstream": {"format": "cifar10", "path": str(cifar), "classes": ["dog", "frog", "horse"]},
            "unlabeled": {"format": "stl10", "path": str(stl), "split": "unlabeled"}}


def folder_coco_data(root) -> dict:
    folder = write_image_folder(root, n_per_class=8, classes=("cat", "dog", "fox", "owl"))
    train, val = (write_coco(root / split, n_images=8) for split in ("train", "val"))
    return {"upstream": {"format": "image_folder", "path": str(folder), "classes": ["cat", "dog"]},
            "downstream": {"format": "image_folder", "path": str(folder), "classes": ["fox", "owl"]},
            "scenes": {"format": "coco", **{split: {"images": str(images), "annotations": str(annotations)}
                                            for split, (images, annotations) in (("train", train), ("val", val))}}}


def test_build_data_writes_every_world_file_from_real_formats(tmp_path):
    data = cifar_stl_data(tmp_path / "a")
    build_data(SMOKE_WORLD, tmp_path / "world", data)
    # Every file but the procedural world's held-out test split, which a real downstream set does not have.
    assert {p.stem for p in (tmp_path / "world").glob("*.npz")} == set(WORLD_FILES) - {"downstream_classify_test"}
    assert set(world_names(data)) == set(WORLD_FILES) - {"downstream_classify_test"}
    assert set(world_names({})) == set(WORLD_FILES) == set(world_names(data)) | set(HELD_OUT)
    assert "downstream_scenes_test" not in world_names({"scenes": {}})  # real scenes: no generated test split
    up = load_task_data(tmp_path / "world/upstream_classify_train.npz", "classify")
    down = load_task_data(tmp_path / "world/downstream_classify_val.npz", "classify")
    assert up.classes == ("airplane", "automobile", "bird") and len(up) == 18 and up.images.shape[1:] == (32, 32, 3)
    assert down.classes == ("dog", "frog", "horse") and set(down.labels.tolist()) <= {0, 1, 2}
    pool = load_world(tmp_path / "world/unlabeled_classify.npz")
    assert len(pool["images"]) == 12 and (pool["labels"] == -1).all()  # STL-10's unlabeled split: no labels
    scenes = load_world(tmp_path / "world/downstream_scenes_train.npz")  # no `scenes` part: the procedural world
    assert len(scenes["images"]) == SMOKE_WORLD["downstream_scenes_train"]
    assert (tmp_path / "world/downstream_scenes_val_coco.json").is_file()  # generated scenes get their COCO file

    data = folder_coco_data(tmp_path / "b")
    build_data({**SMOKE_WORLD, "upstream_classify_train": 10, "downstream_classify_train": 10}, tmp_path / "world2", data)
    up = load_world(tmp_path / "world2/upstream_classify_train.npz")
    assert len(up["images"]) == 10 and set(up["labels"]) == {0, 1}  # capped by a seeded shuffle: both classes
    # No `unlabeled` part: the pool is the 16 - 10 downstream training images the labelled file does not keep.
    # (Which images: test_the_real_pool_is_in_domain_and_never_holds_a_labelled_image.)
    pool = load_world(tmp_path / "world2/unlabeled_classify.npz")
    assert list(pool["classes"]) == ["cat", "dog", "fox", "owl"] and len(pool["images"]) == 6
    assert set(pool["labels"]) <= {2, 3}  # downstream classes, after the upstream ones
    scenes = load_task_data(tmp_path / "world2/downstream_scenes_val.npz", "detect")
    assert scenes.classes == ("bus", "cat", "dog") and scenes.images.shape[1:] == (48, 48, 3)
    assert scenes.coco["annotations"]
    assert not (tmp_path / "world2/downstream_scenes_val_coco.json").exists()  # real scenes have their own JSON


def numbered(n: int, first: int, classes: list[str]) -> dict:
    """n images, each showing its own number (first, first + 1, ...) in its pixels, labels cycling over classes."""
    ids = np.arange(first, first + n)
    images = np.stack([ids % 256, ids // 256, np.zeros_like(ids)], -1).astype(np.uint8)[:, None, None, :]
    return {"images": np.broadcast_to(images, (n, 4, 4, 3)).copy(), "labels": np.arange(n) % len(classes),
            "classes": np.array(classes)}


def ids_of(images: np.ndarray) -> set[int]:
    return set((images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)).tolist())


@pytest.mark.parametrize("ood_share", [0.0, 0.2])
def test_the_real_pool_is_in_domain_and_never_holds_a_labelled_image(ood_share):
    """Self-training's pool on real data: the downstream training images the labelled file does not keep, plus
    the `unlabeled` part, with unlabeled_ood_share of upstream images the upstream file does not keep."""
    spec = {"seed": 3, "upstream_classify_train": 50, "downstream_classify_train": 40, "unlabeled_classify": 30,
            "unlabeled_ood_share": ood_share}
    up, down = numbered(80, 0, ["a", "b"]), numbered(70, 1000, ["c", "d", "e"])
    pool = real_pool(spec, up, down)
    labelled = ids_of(down["images"][kept(spec, "downstream_classify_train", 70)])
    upstream_kept = ids_of(up["images"][kept(spec, "upstream_classify_train", 80)])
    pool_ids = ids_of(pool["images"])
    assert len(pool["images"]) == 30 and not pool_ids & labelled and not pool_ids & upstream_kept
    from_up = {i for i in pool_ids if i < 1000}
    assert len(from_up) == round(30 * ood_share) and (pool["labels"] < 2).sum() == len(from_up)
    assert (pool["labels"][ids_of_each(pool["images"]) >= 1000] >= 2).all()  # downstream labels follow upstream's
    assert list(pool["classes"]) == ["a", "b", "c", "d", "e"]
    # With an unlabeled set, the pool draws from it too; its images carry no label.
    extra = numbered(40, 5000, ["x"])
    pool = real_pool(spec, up, down, {**extra, "labels": np.full(40, -1)})
    assert not ids_of(pool["images"]) & labelled and (pool["labels"] == -1).any()
    assert ids_of(pool["images"]) & set(range(1000, 1070))  # and still from the unlabelled downstream images
    # Every downstream training image labelled and no unlabeled set: nothing in domain is left for a pool.
    with pytest.raises(ValueError, match="downstream_classify_train keeps all 70"):
        real_pool({**spec, "downstream_classify_train": 100}, up, down)


def ids_of_each(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)


def test_a_missing_dataset_fails_naming_its_path_and_format(tmp_path):
    data = {"upstream": {"format": "cifar10", "path": str(tmp_path / "nowhere")},
            "downstream": {"format": "cifar10", "path": str(tmp_path / "nowhere")}}
    with pytest.raises(FileNotFoundError, match="nowhere.*CIFAR-10|CIFAR-10.*nowhere"):
        build_data(SMOKE_WORLD, tmp_path / "world", data)
    with pytest.raises(ValueError, match="both `upstream` and `downstream`"):
        build_data(SMOKE_WORLD, tmp_path / "world", {"upstream": data["upstream"]})


@pytest.mark.parametrize("path,value,named", [
    (("format",), "imagenet", "format"),
    (("path",), "", "path"),
    (("classes",), ["dog"], "classes"),
    (("root",), "x", "root"),  # unknown key
])
def test_a_bad_data_block_is_rejected_naming_the_key(path, value, named):
    config = copy.deepcopy(CONFIG)
    config["profiles"]["smoke"]["data"] = {"upstream": {"format": "cifar10", "path": "a"},
                                           "downstream": {"format": "cifar10", "path": "a"}}
    config["profiles"]["smoke"]["data"]["upstream"][path[0]] = value
    with pytest.raises(ValueError, match=named):
        study_config.resolve(config, "smoke")
    del config["profiles"]["smoke"]["data"]["downstream"]
    config["profiles"]["smoke"]["data"]["upstream"] = {"format": "cifar10", "path": "a"}
    with pytest.raises(ValueError, match="downstream"):
        study_config.resolve(config, "smoke")


@pytest.mark.slow
def test_the_digits_profile_runs_a_real_dataset_through_the_whole_dag(tmp_path):
    """A real image set (scikit-learn's handwritten digits) through every rule of a profile of one's own
    (config/profiles/digits.yaml): each notebook it covers renders, with its verdicts judged on gated arms and the
    upstream checkpoint's accuracy beside every pre-training comparison."""
    result = snakemake("--cores", "2", "--config", "profile=digits", cwd=tmp_path)
    assert result.returncode == 0, failed_job_logs(result, tmp_path)
    profile = study_config.load("digits")
    reports = tmp_path / profile["reports_dir"]
    assert set(profile["notebooks"]) == {"04_zo1_zo2_augmentation_data", "05_zo3_zo5_self_training",
                                         "08_bl2_iterated_self_training"}
    for notebook, block in profile["notebooks"].items():
        findings = json.loads((reports / notebook / "findings.json").read_text())
        assert [f["id"] for f in findings] == block["findings"]
        for f in findings:
            assert f["profile"] == "digits" and f["verdict"] in VERDICTS and f["gates"]
            # A verdict other than `not tested` needs every gate of its primary condition's arms passed.
            assert f["verdict"] == "not tested" or all(g["passed"] for g in f["gates"] if g["arm"] in
                                                        next(c for c in f["conditions"] if c["primary"])["arms"])
        html = (reports / notebook / f"{notebook}.html").read_text()
        pretrained = [f for f in findings if any(g["gate"] == "pretraining" for g in f["gates"])]
        assert not pretrained or "upstream val accuracy" in html or "1-NN probe" in html, notebook
    up = load_world(tmp_path / "cache/digits/world/upstream_classify_train.npz")
    assert list(up["classes"]) == ["zero", "one", "two", "three", "four"] and up["images"].shape[1:] == (16, 16, 3)
    seeds = {seed for block in profile["notebooks"].values() for seed in block["seeds"]}
    for seed in seeds:  # one pre-training per seed, each meeting the recipe's floor
        checkpoint = json.loads((tmp_path / f"cache/digits/checkpoints/upstream-seed{seed}.json").read_text())
        assert checkpoint["val"]["accuracy"] * 100 >= profile["pretrain"]["min_accuracy"], seed


@pytest.mark.slow
def test_notebooks_run_unchanged_on_real_formats(tmp_path):
    """An ImageFolder tree and COCO scenes in the smoke profile, through a classification and a detection notebook."""
    notebooks = ["04_zo1_zo2_augmentation_data", "03_he4_normalization"]
    data = folder_coco_data(tmp_path / "data")
    override = tmp_path / "data.yaml"
    # Half the 16 downstream training images stay unlabelled: self-training's in-domain pool.
    smoke = {"data": data, "world": {"downstream_classify_train": 8}}
    override.write_text(yaml.safe_dump({"profiles": {"smoke": smoke}}))
    targets = [f"build/smoke/reports/{n}/findings.json" for n in notebooks]
    result = snakemake("--cores", "2", *targets, "--configfile", str(override), "--config", "profile=smoke",
                       cwd=tmp_path)
    assert result.returncode == 0, failed_job_logs(result, tmp_path)
    config = copy.deepcopy(CONFIG)
    config["profiles"]["smoke"] = study_config.merge(config["profiles"]["smoke"], smoke)  # as --configfile merges
    smoke_profile = study_config.resolve(config, "smoke")
    for notebook in notebooks:
        folder = tmp_path / f"build/smoke/reports/{notebook}"
        findings = json.loads((folder / "findings.json").read_text())
        block = smoke_profile["notebooks"][notebook]
        assert [f["id"] for f in findings] == block["findings"] and all(f["profile"] == "smoke" for f in findings)
        results = pd.read_csv(folder / "results.csv")  # every seed of the block trained on the real files
        assert set(results.seed) == set(block["seeds"]) and results.value.notna().any()
    world = load_world(tmp_path / "cache/smoke/world/downstream_classify_train.npz")
    assert set(world["classes"]) == set(data["downstream"]["classes"])
    assert np.asarray(world["images"]).dtype == np.uint8
    pool = load_world(tmp_path / "cache/smoke/world/unlabeled_classify.npz")
    assert len(pool["images"]) == 16 - len(world["images"]) == 8  # the downstream images not kept, none labelled twice


def test_pseudo_label_quality_is_unknown_for_a_pool_without_labels():
    from rethink.core.training.pseudo import pseudo_label_quality

    info = {"kept": 2, "pool": 4, "kept_index": np.array([0, 2]), "kept_class": np.array([1, 0])}
    quality = pseudo_label_quality(info, np.full(4, -1), ["a", "b"], ("a", "b"))
    assert quality["kept_share"] == 0.5 and np.isnan(quality["in_domain_share"])
    assert np.isnan(quality["in_domain_accuracy"])
