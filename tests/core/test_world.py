"""Tests for the procedural shape world (rethink.core.data.world)."""

import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rethink.core.data.world import (DOWNSTREAM_CLASSES, SHAPES, SYMMETRY, UPSTREAM_CLASSES, WorldSpec, generate_classification, generate_scenes, load_world, save_world, to_coco)

SPEC = WorldSpec(image_size=32)
SCENE_SPEC = WorldSpec(image_size=64)
ALL_ZERO = dict(texture=0.0, color=0.0, viewpoint=0.0, lighting=0.0, clutter=0.0)
ALL_ONE = dict(texture=1.0, color=1.0, viewpoint=1.0, lighting=1.0, clutter=1.0)


@pytest.fixture(scope="module")
def cls_data():
    return generate_classification(200, UPSTREAM_CLASSES, SPEC, seed=0)


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(60, DOWNSTREAM_CLASSES, SCENE_SPEC, seed=0, max_objects=4)


def test_class_sets():
    assert len(SHAPES) >= 16 and len(set(SHAPES)) == len(SHAPES)
    assert set(UPSTREAM_CLASSES).isdisjoint(DOWNSTREAM_CLASSES)
    assert UPSTREAM_CLASSES + DOWNSTREAM_CLASSES == SHAPES
    assert set(SYMMETRY) == set(SHAPES)


def test_determinism():
    a = generate_classification(40, UPSTREAM_CLASSES, SPEC, seed=3)
    b = generate_classification(40, UPSTREAM_CLASSES, SPEC, seed=3)
    c = generate_classification(40, UPSTREAM_CLASSES, SPEC, seed=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["images"], c["images"])
    s1 = generate_scenes(10, DOWNSTREAM_CLASSES, SCENE_SPEC, seed=3)
    s2 = generate_scenes(10, DOWNSTREAM_CLASSES, SCENE_SPEC, seed=3)
    s3 = generate_scenes(10, DOWNSTREAM_CLASSES, SCENE_SPEC, seed=4)
    for k in s1:
        assert s1[k].tobytes() == s2[k].tobytes()
    assert not np.array_equal(s1["images"], s3["images"])


def test_classification_arrays(cls_data):
    n, k = 200, len(UPSTREAM_CLASSES)
    d = cls_data
    assert d["images"].shape == (n, 32, 32, 3) and d["images"].dtype == np.uint8
    assert d["labels"].shape == (n,) and d["labels"].dtype == np.int64
    assert d["masks"].shape == (n, 32, 32) and d["masks"].dtype == np.uint8
    assert d["pose"].shape == (n, 2) and d["pose"].dtype == np.float32
    assert list(d["classes"]) == list(UPSTREAM_CLASSES)
    assert d["labels"].min() >= 0 and d["labels"].max() < k
    assert np.bincount(d["labels"], minlength=k).min() == n // k  # balanced
    assert set(np.unique(d["masks"])) <= {0, 1}
    assert (d["masks"].sum((1, 2)) > 0).all()  # every object has visible pixels
    assert (d["pose"] >= 0).all() and (d["pose"] < 1).all()
    continuous = np.isin(d["labels"], [i for i, c in enumerate(UPSTREAM_CLASSES) if SYMMETRY[c] == 0])
    assert (d["pose"][continuous, 0] == 0).all()


def test_scene_arrays(scenes):
    n, m, h = 60, 4, 64
    s = scenes
    assert s["images"].shape == (n, h, h, 3) and s["images"].dtype == np.uint8
    for key in ("semantic", "instances"):
        assert s[key].shape == (n, h, h) and s[key].dtype == np.uint8
    assert s["labels"].shape == (n, m) and s["labels"].dtype == np.int64
    assert s["boxes"].shape == (n, m, 4) and s["boxes"].dtype == np.float32
    assert list(s["classes"]) == list(DOWNSTREAM_CLASSES)
    assert ((s["labels"] >= -1) & (s["labels"] < len(DOWNSTREAM_CLASSES))).all()
    assert (s["labels"] >= 0).sum() > n  # scenes really hold several objects


def test_scene_annotations_consistent(scenes):
    s, h = scenes, 64
    for i in range(len(s["images"])):
        labels, inst, sem = s["labels"][i], s["instances"][i], s["semantic"][i]
        kept = labels >= 0
        # kept objects are compacted to the front
        assert not (~kept[:-1] & kept[1:]).any()
        assert set(np.unique(inst)) == {0} | set(np.nonzero(kept)[0] + 1)
        expected_sem = np.where(inst > 0, np.concatenate([[0], labels + 1])[inst], 0)
        np.testing.assert_array_equal(sem, expected_sem)
        for j, lab in enumerate(labels):
            box = s["boxes"][i, j]
            if lab < 0:
                assert (box == 0).all()
                continue
            ys, xs = np.nonzero(inst == j + 1)
            assert len(ys) >= SCENE_SPEC.min_visible_px
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert 0 <= box[0] < box[2] <= h and 0 <= box[1] < box[3] <= h


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_roundtrip_perfect_ap(scenes, tmp_path, iou_type):
    coco_dict = to_coco(scenes, file_prefix="val/")
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco_dict))
    gt = COCO(str(path))
    assert len(gt.getImgIds()) == len(scenes["images"])
    assert len(gt.getAnnIds()) == int((scenes["labels"] >= 0).sum())
    assert gt.imgs[1]["file_name"] == "val/000000.png"
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "segmentation": a["segmentation"], "score": 1.0} for a in coco_dict["annotations"]]
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert abs(ev.stats[0] - 1.0) < 1e-6


def test_knobs_change_variance():
    # Within one class, all-zero knobs should render (nearly) the same image every time.
    def class_variance(knobs):
        d = generate_classification(60, ["pentagon"], WorldSpec(image_size=32, **knobs), seed=1)
        return d["images"].astype(np.float64).var(axis=0).mean()

    low, high = class_variance(ALL_ZERO), class_variance(ALL_ONE)
    assert low < 1.0 and high > 100 * max(low, 1.0)


@pytest.mark.parametrize("knob", ["texture", "color", "viewpoint", "lighting", "clutter"])
def test_each_knob_adds_variation(knob):
    def var(spec):
        return generate_classification(40, ["square"], spec, seed=2)["images"].astype(np.float64).var(0).mean()

    assert var(WorldSpec(**{**ALL_ZERO, knob: 1.0})) > var(WorldSpec(**ALL_ZERO)) + 1.0


def test_spec_validation():
    with pytest.raises(ValueError, match="texture"):
        WorldSpec(texture=1.5)
    with pytest.raises(ValueError, match="clutter"):
        WorldSpec(clutter=-0.1)
    with pytest.raises(ValueError, match="image_size"):
        WorldSpec(image_size=8)
    with pytest.raises(ValueError):
        generate_classification(4, ["not-a-shape"], SPEC, seed=0)


def test_save_load_roundtrip(tmp_path, scenes):
    path = tmp_path / "sub" / "world.npz"
    save_world(path, scenes)
    loaded = load_world(path)
    assert set(loaded) == set(scenes)
    for k in scenes:
        np.testing.assert_array_equal(loaded[k], scenes[k])


def test_load_missing(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz") as err:
        load_world(path)
    assert "snakemake" in str(err.value)


def test_load_corrupt(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="bad.npz"):
        load_world(path)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_the_unlabeled_pool_holds_its_out_of_domain_share(share):
    """Self-training's pool: downstream classes, plus unlabeled_ood_share of upstream ones; seeded."""
    from rethink.core.data.world import unlabeled_pool

    spec = WorldSpec(image_size=32)
    pool = unlabeled_pool(60, share, spec, seed=7)
    classes = list(pool["classes"])
    assert classes == list(UPSTREAM_CLASSES + DOWNSTREAM_CLASSES) and pool["images"].shape == (60, 32, 32, 3)
    upstream = pool["labels"] < len(UPSTREAM_CLASSES)
    assert upstream.sum() == round(60 * share)
    assert set(pool["labels"][~upstream] - len(UPSTREAM_CLASSES)) == set(range(len(DOWNSTREAM_CLASSES)))
    again = unlabeled_pool(60, share, spec, seed=7)
    assert all((pool[k] == again[k]).all() for k in ("images", "labels"))
