"""Tests for rethink.core.data.datasets: each reader on a tiny dataset in the exact real on-disk format
(written by the writers in tests/helpers.py), DALI decoding on the CPU, class subsets, load_dataset
and the error messages."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import (BACKGROUND, CIFAR10_CLASSES, STL10_CLASSES, class_colour, coco_layout, marked_images,
                      requires_dali, write_image_folder)
from rethink.core.data import datasets as D
from rethink.core.data import decode
from rethink.core.data import world as W

SIZE = 32


def _raises(exc, *parts):
    """pytest.raises whose message must contain every one of `parts` (literally)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(str(p))})" for p in parts))


def _check_marked(images: np.ndarray, labels: np.ndarray, tol: int = 0) -> None:
    """Images made by marked_images, after a resize: the class colour in the middle, the white
    bar top-left (and not bottom-left or top-right, which a transpose or flip would give)."""
    s = images.shape[1]
    colours = np.array([class_colour(int(k)) for k in labels])
    assert np.abs(images[:, s // 2, s // 2].astype(int) - colours).max() <= tol
    assert (images[:, 0, 0] >= 255 - tol).all()
    assert np.abs(images[:, -1, 0].astype(int) - colours).max() <= tol
    assert np.abs(images[:, 0, -1].astype(int) - colours).max() <= tol


# ----------------------------------------------------------------------- readers
def test_cifar10_images_labels_and_classes(cifar10_path):
    for split in ("train", "test"):
        data = D.read_cifar10(cifar10_path, split)
        assert data["images"].shape == (30, 32, 32, 3) and data["images"].dtype == np.uint8
        assert data["labels"].dtype == np.int64 and sorted(data["labels"]) == sorted(np.repeat(np.arange(10), 3))
        assert list(data["classes"]) == list(CIFAR10_CLASSES)
        # Pixels and labels survive exactly, orientation included (the planes are row-major).
        np.testing.assert_array_equal(data["images"], marked_images(data["labels"], 32, 32))
    # The folder above cifar-10-batches-py works too.
    np.testing.assert_array_equal(D.read_cifar10(cifar10_path.parent, "test")["labels"], data["labels"])


def test_stl10_column_major_images_come_back_upright(stl10_path):
    for split in ("train", "test"):
        data = D.read_stl10(stl10_path, split)
        assert data["images"].shape == (20, 96, 96, 3) and data["images"].dtype == np.uint8
        assert data["labels"].dtype == np.int64 and set(data["labels"]) == set(range(10))  # 1..10 on disk
        assert list(data["classes"]) == list(STL10_CLASSES)
        np.testing.assert_array_equal(data["images"], marked_images(data["labels"], 96, 96))
        # The bar is wide and top-left: a transposed read would make it tall.
        assert (data["images"][:, 2, 40] == 255).all() and (data["images"][:, 40, 2] != 255).any(-1).all()
    unlabeled = D.read_stl10(stl10_path, "unlabeled")
    assert unlabeled["images"].shape == (5, 96, 96, 3) and (unlabeled["labels"] == -1).all()
    np.testing.assert_array_equal(unlabeled["images"], marked_images(np.arange(5), 96, 96))


def test_image_folder_decodes_and_squashes_every_size(image_folder_path):
    data = D.read_image_folder(image_folder_path, "val", SIZE, "cpu")
    assert data["images"].shape == (9, SIZE, SIZE, 3) and data["images"].dtype == np.uint8
    np.testing.assert_array_equal(data["labels"], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert list(data["classes"]) == ["cat", "dog", "fox"]
    _check_marked(data["images"], data["labels"])  # solid colours survive the resize exactly


def test_image_folder_extensions_and_classes(tmp_path):
    root = tmp_path / "tree"
    for name in ("a", "b", "c"):
        (root / "train" / name).mkdir(parents=True)
    Image.fromarray(marked_images([0], 40, 40)[0]).save(root / "train" / "a" / "x.JPG", quality=95)
    Image.fromarray(marked_images([0], 40, 40)[0]).save(root / "train" / "a" / "y.jpeg", quality=95)
    Image.fromarray(np.full((40, 40), 130, np.uint8)).save(root / "train" / "b" / "gray.png")
    (root / "train" / "b" / "README.txt").write_text("not an image")
    data = D.read_image_folder(root, "train", 16)
    # Every subfolder is a class (so that splits agree), even an empty one; other files are skipped.
    assert list(data["classes"]) == ["a", "b", "c"]
    np.testing.assert_array_equal(data["labels"], [0, 0, 1])
    assert np.abs(data["images"][:2, 8, 8].astype(int) - class_colour(0)).max() <= 4  # JPEG is lossy
    assert (data["images"][2] == 130).all()  # grey becomes RGB


@pytest.mark.parametrize("decoder", [pytest.param("dali", marks=requires_dali), "torchvision"])
def test_decode_files_matches_pil_and_keeps_order(tmp_path, monkeypatch, decoder):
    if decoder == "torchvision":  # what an install without the [dali] extra decodes with
        monkeypatch.setattr(decode, "dali_installed", lambda: False)
    images = W.generate_classification(7, W.UPSTREAM_CLASSES[:3], W.WorldSpec(image_size=48), seed=0)["images"]
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    # 7 files in batches of 3: the last batch is partial (the reader wraps around there).
    got = D.decode_files(paths, SIZE, "cpu", batch_size=3).astype(int)
    want = np.stack([np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for p in paths])
    diff = np.abs(got - want.astype(int))
    assert got.shape == (7, SIZE, SIZE, 3) and diff.mean() < 0.5 and diff.max() <= 10
    np.testing.assert_array_equal(D.decode_files(paths, 48, "cpu", batch_size=4), images)  # no resize: exact
    assert D.decode_files([], SIZE).shape == (0, SIZE, SIZE, 3)


def test_coco_in_the_generate_scenes_format(coco_paths):
    images_dir, annotations = coco_paths
    data = D.read_coco(images_dir, annotations, SIZE, max_objects=4)
    ref = W.generate_scenes(1, W.DOWNSTREAM_CLASSES[:3], W.WorldSpec(image_size=SIZE), seed=0, max_objects=4)
    assert set(data) == set(ref)
    for key in ref:
        assert data[key].dtype.kind == ref[key].dtype.kind and data[key].shape[1:] == ref[key].shape[1:], key
        assert key == "classes" or data[key].dtype == ref[key].dtype, key
    assert len(data["images"]) == 8
    assert list(data["classes"]) == ["bus", "cat", "dog"]  # by category id, not by the file's order
    # Images come in id order; each object largest first, its box squashed with the image.
    for i, (h, w, objects) in enumerate(coco_layout(8, 3)):
        n = len(objects)
        np.testing.assert_array_equal(data["labels"][i], [k for k, *_ in objects] + [-1] * (4 - n))
        boxes = np.array([[x * SIZE / w, y * SIZE / h, (x + bw) * SIZE / w, (y + bh) * SIZE / h]
                          for _, x, y, bw, bh in objects]).reshape(n, 4)
        np.testing.assert_allclose(data["boxes"][i, :n], boxes, rtol=1e-6)
        assert (data["boxes"][i, n:] == 0).all()
        for j in range(n):
            # At a box's centre lies the last object painted there (smaller ones go over larger).
            cx, cy = (int((boxes[j, c] + boxes[j, c + 2]) / 2) for c in (0, 1))
            top = max(t for t, (x0, y0, x1, y1) in enumerate(boxes) if x0 <= cx < x1 and y0 <= cy < y1)
            k = objects[top][0]
            assert tuple(data["images"][i, cy, cx]) == class_colour(k)  # pixels survive
            assert data["semantic"][i, cy, cx] == k + 1 and data["instances"][i, cy, cx] == top + 1
        assert set(np.unique(data["instances"][i])) == set(range(n + 1))
    # Image 1's crowd (the lower half, larger than its one object) is skipped.
    assert (data["labels"][1] >= 0).sum() == 1
    # Image 0 is empty; image 3's small object lies inside its first one and is painted over it.
    assert (data["semantic"][0] == 0).all() and (data["instances"][0] == 0).all()
    assert (data["images"][0] == BACKGROUND).all()
    assert coco_layout(8, 3)[3][2][3][4] == 8 and (data["instances"][3] == 4).sum() > 0


def test_coco_keeps_the_largest_objects(coco_paths):
    data = D.read_coco(*coco_paths, image_size=24, max_objects=2)
    assert data["labels"].shape == (8, 2) and data["boxes"].shape == (8, 2, 4) and data["images"].shape[1] == 24
    h, w, objects = coco_layout(8, 3)[3]  # four objects, largest first
    np.testing.assert_array_equal(data["labels"][3], [objects[0][0], objects[1][0]])
    assert data["instances"][3].max() == 2 and set(np.unique(data["semantic"][3])) <= {0, objects[0][0] + 1,
                                                                                      objects[1][0] + 1}


def test_coco_without_segmentations_paints_boxes(coco_paths, tmp_path):
    dataset = json.loads(coco_paths[1].read_text())
    for ann in dataset["annotations"]:
        ann["segmentation"] = []  # as in detection-only files
    (tmp_path / "boxes.json").write_text(json.dumps(dataset))
    with_masks = D.read_coco(*coco_paths, image_size=SIZE)
    boxes_only = D.read_coco(coco_paths[0], tmp_path / "boxes.json", image_size=SIZE)
    # The fixture's objects are rectangles, whose polygons rasterise to their boxes.
    np.testing.assert_array_equal(boxes_only["semantic"], with_masks["semantic"])
    np.testing.assert_array_equal(boxes_only["instances"], with_masks["instances"])
    np.testing.assert_array_equal(boxes_only["labels"], with_masks["labels"])


# ------------------------------------------------------------------ class subsets
def test_class_subset_relabels_in_the_given_order(cifar10_path):
    data = D.read_cifar10(cifar10_path, "train")
    sub = D.class_subset(data, ["truck", "cat"])
    assert list(sub["classes"]) == ["truck", "cat"] and len(sub["images"]) == 6
    assert sorted(sub["labels"]) == [0, 0, 0, 1, 1, 1]
    _check_marked(sub["images"], np.array([9, 3])[sub["labels"]])  # truck's and cat's colours
    with _raises(ValueError, "['zebra']", "available: airplane, automobile"):
        D.class_subset(data, ["cat", "zebra"])


def test_class_subset_of_an_unlabeled_split_is_an_error(stl10_path):
    with _raises(ValueError, "no labels"):
        D.class_subset(D.read_stl10(stl10_path, "unlabeled"), ["cat"])


def test_class_subset_of_scenes_drops_the_other_objects(coco_paths):
    data = D.read_coco(*coco_paths, image_size=SIZE)
    sub = D.class_subset(data, ["dog", "bus"])
    # Images holding a dog or a bus; their cats become background.
    has = ((data["labels"] == 2) | (data["labels"] == 0)).any(1)
    assert len(sub["images"]) == has.sum()
    np.testing.assert_array_equal(sub["images"], data["images"][has])
    for i, old in enumerate(np.nonzero(has)[0]):
        kept = [(2, 0), (0, 1)]
        want = [new for lab in data["labels"][old] for k, new in kept if lab == k]
        np.testing.assert_array_equal(sub["labels"][i], want + [-1] * (4 - len(want)))
        slots = [j for j, lab in enumerate(data["labels"][old]) if lab in (0, 2)]
        np.testing.assert_array_equal(sub["boxes"][i, :len(slots)], data["boxes"][old, slots])
        # Semantic and instances agree with the new labels.
        inst, sem = sub["instances"][i], sub["semantic"][i]
        assert inst.max() == len(want)
        np.testing.assert_array_equal(sem, np.concatenate([[0], sub["labels"][i] + 1])[inst])
        assert ((data["semantic"][old] == 2) <= (sem == 0)).all()  # the cats are gone


# ------------------------------------------------------------------- load_dataset
def test_load_dataset_every_format(cifar10_path, stl10_path, image_folder_path, coco_paths, tmp_path):
    data = D.load_dataset({"format": "cifar10", "path": str(cifar10_path), "classes": ["truck", "cat"]},
                          "test", image_size=16, device="cpu")
    assert data["images"].shape == (6, 16, 16, 3) and list(data["classes"]) == ["truck", "cat"]
    _check_marked(data["images"], np.array([9, 3])[data["labels"]], tol=1)
    data = D.load_dataset({"format": "stl10", "path": str(stl10_path)}, "unlabeled", image_size=SIZE, device="cpu")
    assert data["images"].shape == (5, SIZE, SIZE, 3) and type(data["images"]) is np.ndarray
    _check_marked(data["images"], np.arange(5), tol=1)
    data = D.load_dataset({"format": "stl10", "path": str(stl10_path)}, "train", image_size=96, device="cpu")
    assert type(data["images"]) is np.ndarray and data["images"].flags.c_contiguous  # not a memory map
    data = D.load_dataset({"format": "image_folder", "path": str(image_folder_path)}, "train", SIZE, "cpu")
    assert data["images"].shape == (9, SIZE, SIZE, 3)
    # A "{split}" in a path names the split's file.
    shutil.copy(coco_paths[1], tmp_path / "instances_val.json")
    spec = {"format": "coco", "images": str(coco_paths[0]), "annotations": str(tmp_path / "instances_{split}.json")}
    data = D.load_dataset(spec, "val", SIZE, "cpu", max_objects=3)
    assert data["labels"].shape == (8, 3) and data["semantic"].shape == (8, SIZE, SIZE)


def test_resize_images_antialiases():
    images = np.zeros((2, 16, 16, 3), np.uint8)
    images[:, :, ::4] = 200  # every fourth column: plain bilinear would sample between them, all 0
    out = D.resize_images(images, 4)
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.uint8
    assert (np.abs(out[:, :, 1:3].astype(int) - 50) <= 3).all()  # away from the borders, the mean


@pytest.mark.parametrize("spec,parts", [
    ({"format": "imagenet", "path": "x"}, ["'format'", "cifar10, stl10, image_folder, sklearn_digits, coco", "'imagenet'"]),
    ({"path": "x"}, ["'format'", "cifar10, stl10"]),
    ({"format": "cifar10", "path": "x", "root": "y"}, ["['root']", "allowed keys: format, path, classes"]),
    ({"format": "coco", "images": "x"}, ["['annotations']", "allowed keys: format, images, annotations, classes"]),
])
def test_load_dataset_rejects_bad_specs(spec, parts):
    with _raises(ValueError, *parts):
        D.load_dataset(spec, "train", SIZE, "cpu")


# ------------------------------------------------------------------------- errors
def test_missing_paths_say_what_was_expected(tmp_path, cifar10_path, image_folder_path, coco_paths):
    nowhere = tmp_path / "nowhere"
    with _raises(FileNotFoundError, nowhere, "python version of CIFAR-10", "data_batch_1", "batches.meta",
                 "https://www.cs.toronto.edu/~kriz/cifar.html", "downloads nothing"):
        D.read_cifar10(nowhere, "train")
    partial = shutil.copytree(cifar10_path, tmp_path / "cifar")
    (partial / "data_batch_3").unlink()
    with _raises(FileNotFoundError, partial / "data_batch_3", "CIFAR-10"):
        D.read_cifar10(partial, "train")
    with _raises(FileNotFoundError, nowhere, "binary version of STL-10", "https://cs.stanford.edu/~acoates/stl10/"):
        D.read_stl10(nowhere, "train")
    with _raises(FileNotFoundError, nowhere, "root/<split>/<class>/*.png"):
        D.read_image_folder(nowhere, "train", SIZE)
    with _raises(FileNotFoundError, image_folder_path / "test", "splits found: train, val"):
        D.read_image_folder(image_folder_path, "test", SIZE)
    with _raises(FileNotFoundError, nowhere / "x.json", "instances JSON", "https://cocodataset.org"):
        D.read_coco(coco_paths[0], nowhere / "x.json", SIZE)
    with _raises(FileNotFoundError, nowhere, "COCO images folder"):
        D.read_coco(nowhere, coco_paths[1], SIZE)
    images = shutil.copytree(coco_paths[0], tmp_path / "coco_images")
    (images / "000000000103.png").unlink()
    with _raises(FileNotFoundError, images / "000000000103.png"):
        D.read_coco(images, coco_paths[1], SIZE)


def test_unknown_splits_are_errors(cifar10_path, stl10_path):
    with _raises(ValueError, "'val'", "train, test"):
        D.read_cifar10(cifar10_path, "val")
    with _raises(ValueError, "'val'", "train, test, unlabeled"):
        D.read_stl10(stl10_path, "val")


def test_malformed_cifar10_files_are_named(tmp_path, cifar10_path):
    folder = shutil.copytree(cifar10_path, tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with _raises(ValueError, folder / "data_batch_2", "pickle"):
        D.read_cifar10(folder, "train")
    with open(folder / "test_batch", "wb") as fh:
        import pickle
        pickle.dump({b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]}, fh)
    with _raises(ValueError, folder / "test_batch", "[N,3072]"):
        D.read_cifar10(folder, "test")


def test_malformed_stl10_files_are_named(tmp_path, stl10_path):
    folder = shutil.copytree(stl10_path, tmp_path / "stl")
    x = (folder / "train_X.bin").read_bytes()
    (folder / "train_X.bin").write_bytes(x[:-5])
    with _raises(ValueError, folder / "train_X.bin", "not a multiple of 3*96*96"):
        D.read_stl10(folder, "train")
    (folder / "test_y.bin").write_bytes(b"\x01\x02")
    with _raises(ValueError, folder / "test_y.bin", "2 labels for 20 images"):
        D.read_stl10(folder, "test")


def test_malformed_coco_json_is_named(tmp_path, coco_paths):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": []}))
    with _raises(ValueError, bad, "lacks 'annotations'"):
        D.read_coco(coco_paths[0], bad, SIZE)
    bad.write_text("{not json")
    with _raises(ValueError, bad, "not valid JSON"):
        D.read_coco(coco_paths[0], bad, SIZE)


@pytest.mark.parametrize("decoder", [pytest.param("dali", marks=requires_dali), "torchvision"])
def test_empty_split_and_undecodable_images(tmp_path, monkeypatch, decoder):
    if decoder == "torchvision":
        monkeypatch.setattr(decode, "dali_installed", lambda: False)
    (tmp_path / "tree" / "train" / "a").mkdir(parents=True)
    with _raises(ValueError, tmp_path / "tree" / "train", "no images"):
        D.read_image_folder(tmp_path / "tree", "train", SIZE)
    root = write_image_folder(tmp_path, n_per_class=1, classes=("a", "b"), splits=("train",))
    (root / "train" / "b" / "000.png").write_bytes(b"garbage")
    with _raises(ValueError, root / "train" / "b" / "000.png", "could not decode"):
        D.read_image_folder(root, "train", SIZE)


def test_sklearn_digits_splits_are_disjoint_and_cover_the_set():
    """scikit-learn's digits: 60/20/20% of one fixed shuffle, every image in exactly one split, at any size."""
    splits = {split: D.read_sklearn_digits(split) for split in ("train", "val", "test")}
    assert [len(s["labels"]) for s in splits.values()] == [1078, 360, 359]  # of 1,797
    assert list(splits["train"]["classes"]) == list(D.DIGIT_NAMES) and splits["train"]["images"].dtype == np.uint8
    rows = [image.tobytes() for s in splits.values() for image in s["images"]]
    assert len(set(rows)) > 1750  # (a few digits are drawn identically in the source data)
    assert all(set(s["labels"].tolist()) == set(range(10)) for s in splits.values())
    again = D.read_sklearn_digits("val")
    np.testing.assert_array_equal(again["images"], splits["val"]["images"])  # the same split every time
    five = D.load_dataset({"format": "sklearn_digits", "classes": ["five", "six"]}, "train", 32)
    assert five["images"].shape[1:] == (32, 32, 3) and set(five["labels"].tolist()) == {0, 1}
    with pytest.raises(ValueError, match="no split 'unlabeled'"):
        D.read_sklearn_digits("unlabeled")
    with pytest.raises(ValueError, match="unknown keys \\['path'\\]"):
        D.load_dataset({"format": "sklearn_digits", "path": "x"}, "train", 32)
