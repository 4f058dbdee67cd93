"""Real datasets by configuration alone: the `world` rule writes the world files from CIFAR-10, STL-10, an
ImageFolder tree and COCO (tiny fixtures in those exact formats), and notebooks run on them unchanged
under the smoke profile."""
import copy
import json

import numpy as np
import pytest
import yaml
from conftest import write_cifar10, write_coco, write_image_folder, write_stl10
from test_workflow import CONFIG, snakemake

from rethink import config as study_config
from rethink.core.data.tasks import load_task_data
from rethink.core.data.world import load_world
from rethink.pipeline.data import HELD_OUT, WORLD_FILES, build_data, world_names

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
    build_data({**SMOKE_WORLD, "upstream_classify_train": 10}, tmp_path / "world2", data)
    up = load_world(tmp_path / "world2/upstream_classify_train.npz")
    assert len(up["images"]) == 10 and set(up["labels"]) == {0, 1}  # capped by a seeded shuffle: both classes
    pool = load_world(tmp_path / "world2/unlabeled_classify.npz")  # default pool: upstream and downstream train
    assert list(pool["classes"]) == ["cat", "dog", "fox", "owl"] and len(pool["images"]) == 32
    scenes = load_task_data(tmp_path / "world2/downstream_scenes_val.npz", "detect")
    assert scenes.classes == ("bus", "cat", "dog") and scenes.images.shape[1:] == (48, 48, 3)
    assert scenes.coco["annotations"]
    assert not (tmp_path / "world2/downstream_scenes_val_coco.json").exists()  # real scenes have their own JSON


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


@pytest.mark.parametrize("formats,notebooks", [
    ("cifar_stl", ["08_bl2_iterated_self_training"]),
    ("folder_coco", ["04_zo1_zo2_augmentation_data", "03_he4_normalization"]),
])
def test_notebooks_run_unchanged_on_real_formats(tmp_path, formats, notebooks):
    data = (cifar_stl_data if formats == "cifar_stl" else folder_coco_data)(tmp_path / "data")
    override = tmp_path / "data.yaml"
    override.write_text(yaml.safe_dump({"profiles": {"smoke": {"data": data}}}))
    targets = [f"build/smoke/reports/{n}/findings.json" for n in notebooks]
    result = snakemake("--cores", "2", *targets, "--configfile", str(override), "--config", "profile=smoke",
                       cwd=tmp_path)
    logs = "\n".join(p.read_text()[-3000:] for p in (tmp_path / "cache/smoke/logs").glob("*.log"))
    assert result.returncode == 0, result.stderr[-4000:] + logs
    for notebook in notebooks:
        findings = json.loads((tmp_path / f"build/smoke/reports/{notebook}/findings.json").read_text())
        assert findings and all(f["profile"] == "smoke" for f in findings)
    world = load_world(tmp_path / "cache/smoke/world/downstream_classify_train.npz")
    assert set(world["classes"]) == set(data["downstream"]["classes"])
    assert np.asarray(world["images"]).dtype == np.uint8


def test_pseudo_label_quality_is_unknown_for_a_pool_without_labels():
    from rethink.core.training.pseudo import pseudo_label_quality

    info = {"kept": 2, "pool": 4, "kept_index": np.array([0, 2]), "kept_class": np.array([1, 0])}
    quality = pseudo_label_quality(info, np.full(4, -1), ["a", "b"], ("a", "b"))
    assert quality["kept_share"] == 0.5 and np.isnan(quality["in_domain_share"])
    assert np.isnan(quality["in_domain_accuracy"])
