"""COCO-format detection data (an images folder and an instances JSON, read with pycocotools) in the
format of :func:`rethink.core.data.world.generate_scenes`; nothing is downloaded."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from .decode import decode_files

_COCO_HELP = ("COCO-format detection data: a folder of images and an instances JSON (with 'images', "
              "'annotations' and 'categories'), e.g. from https://cocodataset.org; rethink downloads nothing")


def _missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} {str(path)!r} does not exist: expected {_COCO_HELP}")


def _load_coco(annotations_file: Path):
    from pycocotools.coco import COCO

    if not annotations_file.is_file():
        raise _missing(annotations_file, "COCO annotations file")
    try:
        dataset = json.loads(annotations_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"COCO annotations file {str(annotations_file)!r} is not valid JSON ({exc})") from exc
    lacking = [k for k in ("images", "annotations", "categories") if not isinstance(dataset, dict) or k not in dataset]
    if lacking:
        raise ValueError(f"COCO annotations file {str(annotations_file)!r} lacks {', '.join(map(repr, lacking))}: "
                         f"expected {_COCO_HELP}")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
    return coco


def _nearest(a: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map [H,W] to size x size (pixel centres)."""
    h, w = a.shape
    rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(np.int64), w - 1)
    return a[rows[:, None], cols[None, :]]


def read_coco(images_dir: str | Path, annotations_file: str | Path, image_size: int, max_objects: int = 4,
              device: str = "cpu") -> dict[str, np.ndarray]:
    """COCO-format detection data in the :func:`rethink.core.data.world.generate_scenes` format.

    Images (sorted by id) are squashed to image_size x image_size, x and y scaled separately,
    and boxes with them. Per image the largest `max_objects` non-crowd annotations are kept,
    largest first: instance id j <-> labels[:, j-1] <-> boxes[:, j-1]. The masks are painted
    in that order, so smaller objects lie over larger ones (an annotation without a segmentation
    paints its box), then resized nearest-neighbour.
    Labels index the categories sorted by id; "classes" holds their names."""
    if not 1 <= max_objects <= 255:
        raise ValueError(f"max_objects must be in [1, 255], got {max_objects}")
    images_dir, annotations_file = Path(images_dir), Path(annotations_file)
    coco = _load_coco(annotations_file)
    if not images_dir.is_dir():
        raise _missing(images_dir, "COCO images folder")
    cat_ids = sorted(coco.cats)
    if len(cat_ids) > 254:
        raise ValueError(f"{str(annotations_file)!r} has {len(cat_ids)} categories; at most 254 fit the uint8 "
                         f"semantic map")
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    img_ids = sorted(coco.imgs)
    n, size, m = len(img_ids), int(image_size), int(max_objects)
    files = [images_dir / coco.imgs[i]["file_name"] for i in img_ids]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"COCO images folder {str(images_dir)!r} lacks {len(missing)} of the {n} images "
                                f"that {str(annotations_file)!r} lists, e.g. {missing[0]!r}")
    out = {"images": decode_files(files, size, device),
           "semantic": np.zeros((n, size, size), np.uint8), "instances": np.zeros((n, size, size), np.uint8),
           "labels": np.full((n, m), -1, np.int64), "boxes": np.zeros((n, m, 4), np.float32)}
    for row, img_id in enumerate(img_ids):
        info = coco.imgs[img_id]
        h, w = int(info["height"]), int(info["width"])
        anns = [a for a in coco.imgToAnns[img_id] if not a.get("iscrowd", 0)]
        anns = sorted(anns, key=lambda a: -a.get("area", a["bbox"][2] * a["bbox"][3]))[:m]
        inst = np.zeros((h, w), np.uint8)
        for j, ann in enumerate(anns):
            x, y, bw, bh = ann["bbox"]
            if ann.get("segmentation"):
                inst[coco.annToMask(ann) > 0] = j + 1
            else:  # detection-only files (e.g. converted from VOC) give boxes alone: paint the box
                inst[round(y):round(y + bh), round(x):round(x + bw)] = j + 1
            box = np.array([x, y, x + bw, y + bh]) * [size / w, size / h, size / w, size / h]
            out["boxes"][row, j] = np.clip(box, 0, size)
            out["labels"][row, j] = cat_index[ann["category_id"]]
        inst = _nearest(inst, size)
        out["instances"][row] = inst
        out["semantic"][row] = np.concatenate([[0], out["labels"][row] + 1])[inst]  # -1 padding never indexed
    out["classes"] = np.array([str(coco.cats[c]["name"]) for c in cat_ids])
    return out
