"""Adapters from real datasets, in their standard on-disk formats, to the study's world files.

Nothing is ever downloaded: each reader takes a local path and returns numpy arrays in the
format of :mod:`rethink.core.data.world`, so every notebook runs unchanged on real data.
Classification readers return {"images": uint8 [N,H,W,3], "labels": int64 [N] (-1 = no
label), "classes"}; :func:`read_coco` returns the :func:`rethink.core.data.world.generate_scenes`
format. :func:`load_dataset` reads one split of a config's dataset spec at a target size.

Formats: CIFAR-10 (python version), STL-10 (binary version), an ImageFolder tree of
JPEG/PNG files, the handwritten digits that scikit-learn ships, and COCO-style detection (an
images folder plus an instances JSON; rethink.core.data.coco).
Files are decoded and resized with a DALI pipeline, on the GPU when the device is CUDA.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .coco import read_coco
from .decode import decode_files, resize_images


__all__ = ["read_cifar10", "read_stl10", "read_image_folder", "read_sklearn_digits", "read_coco", "decode_files", "class_subset",
           "resize_images", "FORMATS", "load_dataset"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_CIFAR10_HELP = ("the python version of CIFAR-10 (the folder cifar-10-batches-py with data_batch_1 ... "
                 "data_batch_5, test_batch, batches.meta), from https://www.cs.toronto.edu/~kriz/cifar.html; "
                 "rethink downloads nothing")
_STL10_HELP = ("the binary version of STL-10 (the folder stl10_binary with train_X.bin, train_y.bin, test_X.bin, "
               "test_y.bin, unlabeled_X.bin, class_names.txt), from https://cs.stanford.edu/~acoates/stl10/; "
               "rethink downloads nothing")
_IMAGE_FOLDER_HELP = ("an ImageFolder tree root/<split>/<class>/*.png (or .jpg, .jpeg), one folder per class; "
                      "rethink downloads nothing")



def _missing(path: Path, what: str, help_text: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} {str(path)!r} does not exist: expected {help_text}")


def _check_split(split: str, allowed: Sequence[str], fmt: str) -> None:
    if split not in allowed:
        raise ValueError(f"{fmt} has no split {split!r}; allowed: {', '.join(allowed)}")


def _find_folder(path: str | Path, name: str, help_text: str) -> Path:
    """The dataset folder itself, or its parent (a common slip in a config)."""
    path = Path(path)
    if not path.is_dir():
        raise _missing(path, "dataset folder", help_text)
    return path / name if (path / name).is_dir() else path


# ------------------------------------------------------------------------- CIFAR-10
def _load_pickle(file: Path) -> dict:
    if not file.is_file():
        raise _missing(file, "CIFAR-10 file", _CIFAR10_HELP)
    try:
        with open(file, "rb") as fh:
            # CIFAR ships as Python pickles; only local files the user points at are read.
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # truncated, not a pickle, ...
        raise ValueError(f"CIFAR-10 file {str(file)!r} is not a readable pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR-10 file {str(file)!r} holds a {type(obj).__name__}, not a dict")
    return obj


def read_cifar10(path: str | Path, split: str) -> dict[str, np.ndarray]:
    """CIFAR-10, python version: split "train" (data_batch_1..5) or "test" (test_batch).

    Returns {"images": uint8 [N,32,32,3], "labels": int64 [N], "classes": names}."""
    _check_split(split, ("train", "test"), "CIFAR-10")
    folder = _find_folder(path, "cifar-10-batches-py", _CIFAR10_HELP)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    meta_file = folder / "batches.meta"
    meta = _load_pickle(meta_file)
    if b"label_names" not in meta:
        raise ValueError(f"CIFAR-10 file {str(meta_file)!r} has no b'label_names'")
    classes = np.array([n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]])
    images, labels = [], []
    for name in names:
        file = folder / name
        batch = _load_pickle(file)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            lab = np.asarray(batch[b"labels"], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"CIFAR-10 file {str(file)!r} has no {exc.args[0]!r}") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(lab) != len(data):
            raise ValueError(f"CIFAR-10 file {str(file)!r}: expected data [N,3072] and N labels; "
                             f"got data {data.shape} and {len(lab)} labels")
        if len(lab) and (lab.min() < 0 or lab.max() >= len(classes)):
            raise ValueError(f"CIFAR-10 file {str(file)!r} has labels outside 0..{len(classes) - 1}")
        # Each row holds the red, green and blue 32x32 planes one after another, row-major.
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return {"images": np.ascontiguousarray(np.concatenate(images)), "labels": np.concatenate(labels),
            "classes": classes}


# --------------------------------------------------------------------------- STL-10
_STL_PIXELS = 3 * 96 * 96


def read_stl10(path: str | Path, split: str) -> dict[str, np.ndarray]:
    """STL-10, binary version: split "train", "test" or "unlabeled" (labels -1).

    Returns {"images": uint8 [N,96,96,3], "labels": int64 [N], "classes": names}. The
    images are a read-only memory map (the unlabeled split is 2.7 GB), transposed to NHWC."""
    _check_split(split, ("train", "test", "unlabeled"), "STL-10")
    folder = _find_folder(path, "stl10_binary", _STL10_HELP)
    names_file, x_file = folder / "class_names.txt", folder / f"{split}_X.bin"
    for file in (names_file, x_file):
        if not file.is_file():
            raise _missing(file, "STL-10 file", _STL10_HELP)
    classes = np.array([line.strip() for line in names_file.read_text().splitlines() if line.strip()])
    size = x_file.stat().st_size
    if size == 0 or size % _STL_PIXELS:
        raise ValueError(f"STL-10 file {str(x_file)!r} holds {size} bytes, not a multiple of 3*96*96 = {_STL_PIXELS}")
    raw = np.memmap(x_file, dtype=np.uint8, mode="r").reshape(-1, 3, 96, 96)
    # Each image is stored column-major (channel, column, row): transpose to (row, column, channel).
    images = raw.transpose(0, 3, 2, 1)
    if split == "unlabeled":
        return {"images": images, "labels": np.full(len(images), -1, np.int64), "classes": classes}
    y_file = folder / f"{split}_y.bin"
    if not y_file.is_file():
        raise _missing(y_file, "STL-10 file", _STL10_HELP)
    labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1  # stored 1..10
    if len(labels) != len(images):
        raise ValueError(f"STL-10 file {str(y_file)!r} holds {len(labels)} labels for {len(images)} images "
                         f"in {str(x_file)!r}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"STL-10 file {str(y_file)!r} has labels outside 1..{len(classes)}")
    return {"images": images, "labels": labels, "classes": classes}


# ----------------------------------------------------------------------- ImageFolder
def read_image_folder(root: str | Path, split: str, image_size: int, device: str = "cpu") -> dict[str, np.ndarray]:
    """An ImageFolder tree root/<split>/<class>/*.{jpg,jpeg,png}; classes are the sorted
    subfolder names (every subfolder, so that splits agree even if one lacks a class).

    Returns {"images": uint8 [N,S,S,3] (each squashed to image_size), "labels": int64 [N],
    "classes": names}, in class order, files sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "ImageFolder root", _IMAGE_FOLDER_HELP)
    folder = root / split
    if not folder.is_dir():
        splits = sorted(d.name for d in root.iterdir() if d.is_dir())
        raise FileNotFoundError(f"ImageFolder split folder {str(folder)!r} does not exist (splits found: "
                                f"{', '.join(splits) or 'none'}): expected {_IMAGE_FOLDER_HELP}")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    files, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(f for f in (folder / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
        files += found
        labels += [k] * len(found)
    if not files:
        raise ValueError(f"ImageFolder split folder {str(folder)!r} holds no images (expected "
                         f"<class>/*.png, *.jpg or *.jpeg; found {len(classes)} class folders)")
    return {"images": decode_files(files, image_size, device), "labels": np.array(labels, np.int64),
            "classes": np.array(classes)}


# ------------------------------------------------------------- scikit-learn's digits
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_SPLITS = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}  # shares of a fixed shuffle


def read_sklearn_digits(split: str) -> dict[str, np.ndarray]:
    """The UCI handwritten digits as scikit-learn ships them (sklearn.datasets.load_digits: 1,797 grey 8x8
    images of 10 classes, read from inside the installed package; nothing is downloaded): a real image set
    small enough for the tests. It has no splits of its own: "train", "val" and "test" are 60/20/20% of
    one fixed shuffle. Returns {"images": uint8 [N,8,8,3] (grey in all three channels), "labels": int64 [N],
    "classes": the digits' names, "zero" ... "nine"}."""
    _check_split(split, tuple(DIGIT_SPLITS), "sklearn_digits")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("format sklearn_digits reads the digits bundled with scikit-learn, which is not "
                          "installed: pip install -e '.[dev]' (make setup installs it)") from exc
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    start, stop = (round(share * len(order)) for share in DIGIT_SPLITS[split])
    keep = order[start:stop]
    grey = np.round(digits.images[keep] * (255 / 16)).astype(np.uint8)  # values 0..16
    return {"images": np.repeat(grey[..., None], 3, axis=-1), "labels": digits.target[keep].astype(np.int64),
            "classes": np.array(DIGIT_NAMES)}


# --------------------------------------------------------------------- class subsets
def class_subset(data: dict, classes: Sequence[str]) -> dict:
    """Keep only the images of `classes`, relabelled 0..len(classes)-1 in the given order:
    one dataset split into upstream and downstream tasks by class subsets.

    Classification data keeps the images whose label is in `classes`. Scene data keeps the
    objects of `classes` (others become background in "semantic" and "instances") and the
    images with at least one of them."""
    classes = [str(c) for c in classes]
    available = [str(c) for c in data["classes"]]
    unknown = [c for c in classes if c not in available]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names of this dataset; unknown: {unknown}; "
                         f"available: {', '.join(available)}")
    labels = np.asarray(data["labels"])
    if (labels < 0).all():
        raise ValueError("this split has no labels (an unlabeled split): a class subset cannot be taken")
    remap = np.full(len(available) + 1, -1, np.int64)  # old label -> new, last entry for -1
    remap[[available.index(c) for c in classes]] = np.arange(len(classes))
    new = remap[labels]
    if labels.ndim == 1:
        keep = new >= 0
        out = {k: (np.asarray(v)[keep] if k != "classes" else v) for k, v in data.items()}
        out["labels"] = new[keep]
    else:
        out = _scene_subset(data, new)
    out["classes"] = np.array(classes)
    return out


def _scene_subset(data: dict, new: np.ndarray) -> dict:
    """Drop the objects whose new label is -1 from scenes, compacting the rest to the front."""
    n, m = new.shape
    kept = new >= 0
    new_id = np.cumsum(kept, 1) * kept  # old slot -> compacted 1-based id (0 = dropped)
    labels = np.full((n, m), -1, np.int64)
    boxes = np.zeros((n, m, 4), np.float32)
    rows, slots = np.nonzero(kept)
    labels[rows, new_id[rows, slots] - 1] = new[rows, slots]
    boxes[rows, new_id[rows, slots] - 1] = np.asarray(data["boxes"])[rows, slots]
    id_table = np.concatenate([np.zeros((n, 1), np.int64), new_id], 1)
    inst = np.take_along_axis(id_table, np.asarray(data["instances"]).reshape(n, -1).astype(np.int64), 1)
    sem = np.take_along_axis(np.concatenate([np.zeros((n, 1), np.int64), labels + 1], 1), inst, 1)
    shape = np.asarray(data["instances"]).shape
    keep = kept.any(1)
    out = {k: np.asarray(v)[keep] for k, v in data.items() if k != "classes"}
    out.update(labels=labels[keep], boxes=boxes[keep], instances=inst.reshape(shape).astype(np.uint8)[keep],
               semantic=sem.reshape(shape).astype(np.uint8)[keep])
    return out


# --------------------------------------------------------------------------- loading
FORMATS: dict[str, Callable[..., dict]] = {
    "cifar10": read_cifar10,
    "stl10": read_stl10,
    "image_folder": read_image_folder,
    "sklearn_digits": read_sklearn_digits,
    "coco": read_coco,
}
# The path keys of each format's spec; "format" and the optional "classes" go with every one.
_SPEC_PATHS = {"cifar10": ("path",), "stl10": ("path",), "image_folder": ("path",), "sklearn_digits": (),
               "coco": ("images", "annotations")}


def load_dataset(spec: dict, split: str, image_size: int, device: str = "cpu", max_objects: int = 4) -> dict:
    """One split of a dataset spec, in the world-file format at image_size x image_size.

    spec: {"format": one of FORMATS, "path": ... (cifar10, stl10, image_folder), "images"
    and "annotations" (coco) or nothing (sklearn_digits), "classes": [optional subset, see class_subset]}. A "{split}"
    in a path is replaced by `split`, e.g. "instances_{split}2017.json"."""
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ValueError(f"dataset spec key 'format' must be one of {', '.join(FORMATS)}; got {fmt!r}")
    allowed = ("format", *_SPEC_PATHS[fmt], "classes")
    unknown = [k for k in spec if k not in allowed]
    lacking = [k for k in _SPEC_PATHS[fmt] if k not in spec]
    if unknown or lacking:
        raise ValueError(f"dataset spec of format {fmt!r}: unknown keys {unknown}, missing keys {lacking}; "
                         f"allowed keys: {', '.join(allowed)}")
    paths = {k: str(spec[k]).replace("{split}", split) for k in _SPEC_PATHS[fmt]}
    if fmt == "coco":
        data = read_coco(paths["images"], paths["annotations"], image_size, max_objects, device)
    elif fmt == "image_folder":
        data = read_image_folder(paths["path"], split, image_size, device)
    elif fmt == "sklearn_digits":
        data = read_sklearn_digits(split)
    else:
        data = FORMATS[fmt](paths["path"], split)
    if spec.get("classes") is not None:
        data = class_subset(data, spec["classes"])
    if data["images"].shape[1:3] != (image_size, image_size):
        data = {**data, "images": resize_images(data["images"], image_size)}
    else:
        data = {**data, "images": np.ascontiguousarray(data["images"])}  # a memory map becomes an array
    return data
