"""The world's files: the procedural world's, or a real dataset's read into the same format (the `world` rule)."""
from __future__ import annotations

import json
import time
from pathlib import Path


# The data files every notebook may read, by name (without .npz) -> (kind, class set, split seed).
WORLD_FILES = {
    "upstream_classify_train": ("classify", "upstream", 1),
    "upstream_classify_val": ("classify", "upstream", 2),
    "downstream_classify_train": ("classify", "downstream", 3),
    "downstream_classify_val": ("classify", "downstream", 4),
    "downstream_scenes_train": ("scenes", "downstream", 5),
    "downstream_scenes_val": ("scenes", "downstream", 6),
    # Self-training's unlabeled pool, labels unused (only to grade the pseudo-labels). Classification: images of
    # the downstream classes, as Noisy Student draws in-distribution images, with the world's
    # `unlabeled_ood_share` of upstream ones (default 0: an early run found only 50-65% of the pseudo-labels kept from a
    # half-upstream pool showed a downstream class at all). Scenes: objects of every class.
    "unlabeled_classify": ("classify", "pool", 7),
    "unlabeled_scenes": ("scenes", "all", 8),
    # Newell & Deng's held-out test split (ND notebooks): a model selected by its validation accuracy is reported
    # here. Only the procedural world has one: a real downstream dataset's splits are its train and validation.
    "downstream_classify_test": ("classify", "downstream", 9),
    # He et al.'s HE-2 scores its final detectors on these held-out scenes, four times the validation set.
    "downstream_scenes_test": ("scenes", "downstream", 10),
}
HELD_OUT = {"downstream_classify_test": "downstream", "downstream_scenes_test": "scenes"}  # -> the `data` part


def world_names(data: dict | None = None) -> list[str]:
    """The world files a profile has: all of WORLD_FILES, less a held-out test split whose part (downstream
    classification, scenes) its `data` block brings from a real dataset."""
    return [name for name in WORLD_FILES if HELD_OUT.get(name) not in (data or {})]


def build_world(spec: dict, out_dir: str, names: list[str] | None = None) -> None:
    """Generate the world files `names` (default: all of WORLD_FILES) of a profile. `spec` is the profile's
    `world` block of config/study.yaml."""
    from ..core.data import world as W

    spec = dict(spec)
    sizes = {name: spec.pop(name) for name in WORLD_FILES}
    ood_share = spec.pop("unlabeled_ood_share", 0.0)
    seed = spec.pop("seed")
    scene_size = spec.pop("scene_size")
    max_objects = spec.pop("max_objects")
    classify_spec = W.WorldSpec(**spec)
    scene_spec = W.WorldSpec(**{**spec, "image_size": scene_size})
    out = Path(out_dir)
    for name in names or WORLD_FILES:
        kind, class_set, offset = WORLD_FILES[name]
        classes = {"upstream": W.UPSTREAM_CLASSES, "downstream": W.DOWNSTREAM_CLASSES,
                   "all": W.UPSTREAM_CLASSES + W.DOWNSTREAM_CLASSES}.get(class_set)
        started = time.perf_counter()
        if class_set == "pool":
            data = W.unlabeled_pool(sizes[name], ood_share, classify_spec, seed * 100 + offset)
        elif kind == "classify":
            data = W.generate_classification(sizes[name], classes, classify_spec, seed=seed * 100 + offset)
        else:
            data = W.generate_scenes(sizes[name], classes, scene_spec, seed=seed * 100 + offset,
                                     max_objects=max_objects)
        W.save_world(out / f"{name}.npz", data)
        print(f"{name}: {sizes[name]} images in {time.perf_counter() - started:.1f} s", flush=True)
    if "downstream_scenes_val" not in (names or WORLD_FILES):
        return
    # The validation scenes as a COCO instances file, for readers who want to score their own detector.
    scenes = W.load_world(out / "downstream_scenes_val.npz")
    (out / "downstream_scenes_val_coco.json").write_text(json.dumps(W.to_coco(scenes)))


# The world files each part of a profile's `data` block replaces with a real dataset (rethink.core.data.datasets),
# and the dataset splits they come from; self-training's pool is made from them (real_pool).
DATA_PARTS = {"upstream": {"upstream_classify_train": "train", "upstream_classify_val": "val"},
              "downstream": {"downstream_classify_train": "train", "downstream_classify_val": "val"},
              "unlabeled": {"unlabeled_classify": "unlabeled"},
              "scenes": {"downstream_scenes_train": "train", "downstream_scenes_val": "val",
                         "unlabeled_scenes": "train"}}
# Each format's names for the study's splits (COCO: one images folder and JSON per split, in the config).
FORMAT_SPLITS = {"cifar10": {"train": "train", "val": "test"}, "stl10": {"train": "train", "val": "test"},
                 "image_folder": {"train": "train", "val": "val"}}


def build_data(spec: dict, out_dir: str, data: dict | None = None, device: str = "cpu") -> None:
    """Every world file of a profile: from the real datasets of its `data` block (config/study.yaml) where it
    names one, from the procedural world otherwise. Real images are resized to the world's image sizes, and
    each file holds a seeded random sample of at most the world's size for it (all images if fewer).
    Self-training's pool is in domain, as the world's is (`real_pool`)."""
    from ..core.data import datasets
    from ..core.data import world as W

    data = dict(data or {})
    if ("upstream" in data) != ("downstream" in data):
        raise ValueError("data: name both `upstream` and `downstream` (a real upstream/downstream split), or neither")
    real = {name: (part, split) for part in data if part != "unlabeled"
            for name, split in DATA_PARTS[part].items()}
    if "upstream" in data:
        real["unlabeled_classify"] = ("pool", "train")
    generated = [name for name in world_names(data) if name not in real]
    if generated:
        build_world(spec, out_dir, names=generated if real else None)
    out, loaded = Path(out_dir), {}

    def load(part: str, split: str) -> dict:
        if (part, split) not in loaded:
            part_spec = dict(data[part])
            kind = "scenes" if part == "scenes" else "classify"
            size = spec["scene_size"] if kind == "scenes" else spec["image_size"]
            fmt, dataset_split = part_spec.get("format"), split
            if fmt == "coco":
                if split not in part_spec:
                    raise ValueError(f"data.scenes needs a `{split}` entry (images folder and annotations JSON)")
                part_spec = {"format": "coco", **part_spec.pop(split)}
            else:
                dataset_split = part_spec.pop("split", None) or FORMAT_SPLITS.get(fmt, {}).get(split, split)
            loaded[(part, split)] = datasets.load_dataset(part_spec, dataset_split, size, device,
                                                          max_objects=spec["max_objects"])
        return loaded[(part, split)]

    for name, (part, split) in real.items():
        started = time.perf_counter()
        if part == "pool":
            arrays = real_pool(spec, load("upstream", "train"), load("downstream", "train"),
                               load("unlabeled", "unlabeled") if "unlabeled" in data else None)
            source = "the downstream and upstream training images no labelled file keeps" + \
                     (", and data.unlabeled" if "unlabeled" in data else "")
        else:
            arrays = load(part, split)
            arrays = {k: (v if k == "classes" else v[kept(spec, name, len(arrays["images"]))]) for k, v in arrays.items()}
            source = data[part].get("format")
        W.save_world(out / f"{name}.npz", arrays)
        print(f"{name}: {len(arrays['images'])} images from {source} in {time.perf_counter() - started:.1f} s",
              flush=True)


def kept(spec: dict, name: str, available: int):
    """The images of a real split that world file `name` keeps: a seeded shuffle (folders list images class by
    class, and label fractions take prefixes), then at most the world's size for it."""
    import numpy as np

    return np.random.default_rng(spec["seed"] * 100 + WORLD_FILES[name][2]).permutation(available)[:spec[name]]


def real_pool(spec: dict, upstream: dict, downstream: dict, unlabeled: dict | None = None) -> dict:
    """Self-training's pool on real data, in domain as the world's is: the downstream training images that
    downstream_classify_train does not keep (never a labelled image, whatever the label share), and data.unlabeled's
    images where given; of its `unlabeled_classify` images, the share `unlabeled_ood_share` comes from the upstream
    training images that upstream_classify_train does not keep. Labels index the upstream classes, then the
    downstream ones (only to grade the pseudo-labels); data.unlabeled's images have none (-1)."""
    import numpy as np

    def rest(name: str, arrays: dict) -> np.ndarray:
        n = len(arrays["images"])
        return np.setdiff1d(np.arange(n), kept(spec, name, n))

    n_up = len(upstream["classes"])
    unlabelled = rest("downstream_classify_train", downstream)
    images, labels = downstream["images"][unlabelled], downstream["labels"][unlabelled] + n_up
    if unlabeled is not None:
        images = np.concatenate([images, unlabeled["images"]])
        labels = np.concatenate([labels, np.full(len(unlabeled["images"]), -1, np.int64)])
    if len(images) == 0:
        raise ValueError(f"data: self-training's pool (unlabeled_classify) would hold no downstream image: "
                         f"world.downstream_classify_train keeps all {len(downstream['images'])} downstream training "
                         f"images. Lower it, or name a pool under data.unlabeled")
    ood_index = rest("upstream_classify_train", upstream)
    size = spec["unlabeled_classify"]
    ood = min(round(size * spec.get("unlabeled_ood_share", 0.0)), len(ood_index))
    rng = np.random.default_rng(spec["seed"] * 100 + WORLD_FILES["unlabeled_classify"][2])
    pick = rng.permutation(len(images))[:size - ood]
    pick_ood = rng.permutation(ood_index)[:ood]
    images = np.concatenate([images[pick], upstream["images"][pick_ood]])
    labels = np.concatenate([labels[pick], upstream["labels"][pick_ood]])
    order = rng.permutation(len(images))
    return {"images": images[order], "labels": labels[order],
            "classes": np.concatenate([upstream["classes"], downstream["classes"]])}
