"""A procedurally generated "visual world" of shapes, so the study downloads nothing.

The four variation knobs follow Newell & Deng (2020): texture, color, viewpoint and
lighting, each in [0, 1] (0 = factor held fixed, 1 = full variation), plus clutter
(background texture, distractor fragments, pixel noise). Classification images hold one
object; scenes hold several, later ones occluding earlier ones, with COCO-style labels.

Rendering lives in rethink.core.data.render; this module makes the world's files from it: classification
images, scenes with COCO-style labels, the unlabeled pool, and their on-disk form. Randomness comes only from a
local ``torch.Generator``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .cachefiles import rebuild_command
from .render import WorldSpec, check_classes, chunk_size, render_batch, to_uint8
from .shapes import DOWNSTREAM_CLASSES, SHAPES, SYMMETRY, TAU, UPSTREAM_CLASSES

Tensor = torch.Tensor


__all__ = ["SHAPES", "UPSTREAM_CLASSES", "DOWNSTREAM_CLASSES", "SYMMETRY", "WorldSpec", "generate_classification",
           "generate_scenes", "to_coco", "save_world", "load_world"]


# ---------------------------------------------------------------------- public API
def generate_classification(n: int, classes: Sequence[str], spec: WorldSpec, seed: int) -> dict[str, np.ndarray]:
    """One object per image (plus background clutter that is not any class).

    Returns {"images": uint8 [n,H,W,3], "labels": int64 [n] (index into `classes`),
    "masks": uint8 [n,H,W] (1 where the object is visible), "pose": float32 [n,2]
    (in-plane angle as a fraction of the shape's symmetry period in [0,1) -- 0 for
    circle/ring -- and viewpoint tilt in [0,1]), "classes": array of class names}.
    Classes are balanced (n // K or n // K + 1 images each) and shuffled."""
    classes = check_classes(classes)
    g = torch.Generator().manual_seed(int(seed))
    size = spec.image_size
    labels = (torch.arange(n) % len(classes))[torch.randperm(n, generator=g)]
    sids = torch.tensor([SHAPES.index(c) for c in classes])[labels]
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    pose = np.empty((n, 2), np.float32)
    periods = torch.tensor([TAU / max(SYMMETRY[c], 1) if SYMMETRY[c] else 0.0 for c in classes])
    step = chunk_size(size, 1)
    for i in range(0, n, step):
        sl = slice(i, min(n, i + step))
        img, w, o = render_batch(g, sids[sl].view(-1, 1), spec, scene=False)
        images[sl] = to_uint8(img)
        masks[sl] = (w[:, 0] >= 0.5).to(torch.uint8).numpy()
        per = periods[labels[sl]]
        frac = torch.where(per > 0, torch.remainder(o["angle"][:, 0], per.clamp_min(1e-9)) / per.clamp_min(1e-9), 0.0)
        pose[sl] = torch.stack([frac.clamp(0, 1 - 1e-6), o["tilt"][:, 0]], 1).numpy()
    return {"images": images, "labels": labels.numpy().astype(np.int64), "masks": masks, "pose": pose,
            "classes": np.array(classes)}


def unlabeled_pool(n: int, ood_share: float, spec: WorldSpec, seed: int) -> dict[str, np.ndarray]:
    """Self-training's classification pool: n images, round(n * ood_share) of upstream classes and the rest of
    downstream ones, shuffled. Labels index the upstream classes followed by the downstream ones (`classes`)."""
    ood = round(n * ood_share)
    parts = [generate_classification(ood, UPSTREAM_CLASSES, spec, seed=seed + 50),
             generate_classification(n - ood, DOWNSTREAM_CLASSES, spec, seed=seed)]
    parts[1]["labels"] = parts[1]["labels"] + len(UPSTREAM_CLASSES)
    order = np.random.default_rng(seed).permutation(n)
    pool = {key: np.concatenate([p[key] for p in parts])[order] for key in ("images", "labels", "masks", "pose")}
    return {**pool, "classes": np.array(UPSTREAM_CLASSES + DOWNSTREAM_CLASSES)}


def generate_scenes(n: int, classes: Sequence[str], spec: WorldSpec, seed: int,
                    max_objects: int = 4) -> dict[str, np.ndarray]:
    """1..max_objects objects per image; later objects occlude earlier ones.

    Returns {"images": uint8 [n,H,W,3], "semantic": uint8 [n,H,W] (0 = background, k+1 =
    class k), "instances": uint8 [n,H,W] (0 = background, j = j-th kept object, 1-based,
    visible pixels only), "labels": int64 [n,max_objects] (-1 = none), "boxes": float32
    [n,max_objects,4] (x0,y0,x1,y1 of the visible mask, x1 = max_col+1; 0 for padding),
    "classes": array of class names}. Objects with fewer than spec.min_visible_px
    visible pixels are dropped; kept objects are compacted to the front in depth order
    (back to front), so instance id j <-> labels[:, j-1] <-> boxes[:, j-1]."""
    classes = check_classes(classes)
    if not 1 <= max_objects <= 255:
        raise ValueError(f"max_objects must be in [1, 255], got {max_objects}")
    g = torch.Generator().manual_seed(int(seed))
    size, m = spec.image_size, max_objects
    class_sid = torch.tensor([SHAPES.index(c) for c in classes])
    out = {"images": np.empty((n, size, size, 3), np.uint8), "semantic": np.empty((n, size, size), np.uint8),
           "instances": np.empty((n, size, size), np.uint8), "labels": np.empty((n, m), np.int64),
           "boxes": np.empty((n, m, 4), np.float32)}
    step = chunk_size(size, m)
    for i in range(0, n, step):
        b = min(n, i + step) - i
        count = torch.randint(1, m + 1, (b,), generator=g)
        lab = torch.randint(0, len(classes), (b, m), generator=g)
        lab = torch.where(torch.arange(m).view(1, m) < count.view(b, 1), lab, -1)
        img, w, _ = render_batch(g, torch.where(lab >= 0, class_sid[lab.clamp_min(0)], -1), spec, scene=True)
        # Each pixel belongs to whichever contributes most: background/clutter or an object.
        inst = torch.cat([1 - w.sum(1, keepdim=True), w], 1).argmax(1)  # [b,H,W], 0 = background
        area = F.one_hot(inst, m + 1).sum((1, 2))[:, 1:]  # [b,m]
        keep = (lab >= 0) & (area >= spec.min_visible_px)
        new_id = torch.cumsum(keep.long(), 1) * keep  # old slot -> compacted 1-based id (0 = dropped)
        id_table = torch.cat([torch.zeros(b, 1, dtype=torch.long), new_id], 1)
        inst = torch.gather(id_table, 1, inst.view(b, -1)).view(b, size, size)
        new_lab = torch.full((b, m + 1), -1, dtype=torch.long)
        new_lab.scatter_(1, torch.where(keep, new_id - 1, m), torch.where(keep, lab, -1))  # dropped -> spare column m
        new_lab = new_lab[:, :m]
        sem_table = torch.cat([torch.zeros(b, 1, dtype=torch.long), new_lab + 1], 1)  # -1 + 1 = 0 for padding
        sem = torch.gather(sem_table, 1, inst.view(b, -1)).view(b, size, size)
        onehot = inst.unsqueeze(1) == torch.arange(1, m + 1).view(1, m, 1, 1)  # [b,m,H,W]
        cols, rows = onehot.any(2), onehot.any(3)  # [b,m,W], [b,m,H]
        present = cols.any(2)
        x0, y0 = cols.float().argmax(2), rows.float().argmax(2)
        x1, y1 = size - cols.flip(2).float().argmax(2), size - rows.flip(2).float().argmax(2)
        boxes = torch.stack([x0, y0, x1, y1], 2).float() * present.unsqueeze(2)
        sl = slice(i, i + b)
        out["images"][sl] = to_uint8(img)
        out["semantic"][sl] = sem.to(torch.uint8).numpy()
        out["instances"][sl] = inst.to(torch.uint8).numpy()
        out["labels"][sl] = new_lab.numpy()
        out["boxes"][sl] = boxes.numpy()
    out["classes"] = np.array(classes)
    return out


def to_coco(scenes: dict, file_prefix: str = "") -> dict:
    """COCO instances dict for a `generate_scenes` result (loads with pycocotools COCO)."""
    from pycocotools import mask as mask_utils

    inst, labels, classes = scenes["instances"], scenes["labels"], [str(c) for c in scenes["classes"]]
    n, h, w = inst.shape
    images, anns = [], []
    for i in range(n):
        images.append({"id": i + 1, "file_name": f"{file_prefix}{i:06d}.png", "width": int(w), "height": int(h)})
        ids = np.nonzero(labels[i] >= 0)[0]
        if len(ids) == 0:
            continue
        masks = np.asfortranarray((inst[i][..., None] == (ids + 1)).astype(np.uint8))
        rles = mask_utils.encode(masks)
        for j, rle in zip(ids, rles):
            m = masks[..., list(ids).index(j)]
            ys, xs = np.nonzero(m)
            rle["counts"] = rle["counts"].decode("ascii")
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(labels[i, j]) + 1,
                         "bbox": [float(xs.min()), float(ys.min()),
                                  float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)],
                         "area": float(m.sum()), "segmentation": rle, "iscrowd": 0})
    return {"info": {"description": "rethink procedural shape world"}, "licenses": [], "images": images,
            "categories": [{"id": k + 1, "name": c, "supercategory": "shape"} for k, c in enumerate(classes)],
            "annotations": anns}


def save_world(path, data: dict) -> None:
    """np.savez_compressed to exactly `path` (no ".npz" appended), written atomically so
    an interrupted Snakemake job never leaves a half-written target behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in data.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_world(path) -> dict:
    """Inverse of `save_world`: dict of numpy arrays."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"world data file {str(path)!r} does not exist; it is made by the Snakemake rule "
                                f"`world`: {rebuild_command(path)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, pickle and format errors all mean "bad file"
        raise ValueError(f"world data file {str(path)!r} is corrupt or not an .npz archive ({exc}); "
                         f"{rebuild_command(path)}") from exc
