"""What several test files share: the study's root and committed config, Snakemake run as make study runs it,
and writers of tiny datasets in the real formats (pytest's fixtures that use them are in conftest.py)."""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rethink import config as study_config
from rethink.core.augment.ladder import DALI_EXTRA, dali_installed

ROOT = Path(__file__).resolve().parents[1]
CONFIG = study_config.raw()
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

# The four verdicts of protocol v2 (docs/protocol.md), written out here rather than read from the code under test.
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not tested")

requires_dali = pytest.mark.skipif(not dali_installed(), reason=f"needs NVIDIA DALI ({DALI_EXTRA})")


def snakemake(*args, cwd):
    """As make study / make smoke run it: stale locks removed, --rerun-incomplete."""
    return subprocess.run([sys.executable, "-m", "rethink", "snakemake", "-s", str(ROOT / "Snakefile"), *args],
                          cwd=cwd, env=ENV, capture_output=True, text=True)


def failed_job_logs(result, cwd) -> str:
    """Snakemake's last words and, for each job it names under "Error in rule", the end of the job's log and the
    error its executed notebook holds (papermill keeps a notebook's traceback in the .ipynb, not in the log)."""
    text = result.stdout + result.stderr
    parts = [result.stderr[-2000:]]
    for block in re.findall(r"^Error in rule \S+:\n(.*?)(?=^\S|\Z)", text, re.MULTILINE | re.DOTALL):
        for name in re.findall(r"^\s*log: (\S+)", block, re.MULTILINE):
            if (Path(cwd) / name).is_file():
                parts.append(f"--- {name}\n" + (Path(cwd) / name).read_text()[-3000:])
        outputs = [o.strip() for line in re.findall(r"^\s*output: (.*)$", block, re.MULTILINE) for o in line.split(",")]
        for notebook in dict.fromkeys(n for o in outputs for n in sorted((Path(cwd) / o).parent.glob("*.ipynb"))):
            parts.append(f"--- {notebook.relative_to(cwd)}\n" + notebook_error(notebook)[-3000:])
    return "\n".join(parts)


def notebook_error(path) -> str:
    """The error outputs of an executed notebook (ename, evalue, traceback without colour codes), or a line saying
    it has none."""
    cells = json.loads(Path(path).read_text()).get("cells", [])
    errors = [out for cell in cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if not errors:
        return "(no error output in this notebook)"
    return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", [])))
                     or f"{out.get('ename')}: {out.get('evalue')}" for out in errors)


# ------------------------------------------------------------------ real-format datasets
# Writers of tiny datasets in the exact on-disk formats rethink.core.data.datasets reads, for tests and
# for trying the notebooks on each format. Every image is its class's solid colour with a
# white bar over the left half of its top sixth: the colour says the label, the bar the
# orientation (a transposed or flipped image moves it).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
BACKGROUND = (90, 90, 90)  # COCO images' background, no class colour


def class_colour(k: int) -> tuple[int, int, int]:
    """A distinct solid colour for class k (k < 27), never white or the COCO background."""
    levels = (20, 130, 230)
    return levels[k % 3], levels[(k // 3) % 3], levels[(k // 9) % 3]


def marked_images(labels, height: int, width: int) -> np.ndarray:
    """uint8 [N,H,W,3]: class colour with a white bar at rows [0, H//6), columns [0, W//2)."""
    images = np.empty((len(labels), height, width, 3), np.uint8)
    images[:] = np.array([class_colour(int(k)) for k in labels], np.uint8)[:, None, None]
    images[:, : max(1, height // 6), : width // 2] = 255
    return images


def _shuffled_labels(n_per_class: int, n_classes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(n_classes), n_per_class))


def write_cifar10(root, n_per_class: int = 3, classes=CIFAR10_CLASSES) -> Path:
    """CIFAR-10's python version under root: n_per_class images of each class in the train
    batches (spread over data_batch_1..5) and in test_batch. Returns root/cifar-10-batches-py."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in classes],
                      b"num_vis": 3072}, fh)
    train = _shuffled_labels(n_per_class, len(classes), seed=0)
    parts = [(f"data_batch_{i + 1}", lab) for i, lab in enumerate(np.array_split(train, 5))]
    for name, labels in parts + [("test_batch", _shuffled_labels(n_per_class, len(classes), seed=1))]:
        # Rows hold the R, G and B planes, each 32x32 row-major.
        data = marked_images(labels, 32, 32).transpose(0, 3, 1, 2).reshape(len(labels), 3072)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": [int(k) for k in labels], b"data": data,
                          b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))]}, fh)
    return folder


def write_stl10(root, n_per_class: int = 2, n_unlabeled: int = 5, classes=STL10_CLASSES) -> Path:
    """STL-10's binary version under root: n_per_class 96x96 images of each class in train
    and in test, n_unlabeled in unlabeled (classes cycling). Returns root/stl10_binary."""
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "class_names.txt").write_text("".join(f"{c}\n" for c in classes))
    splits = {"train": _shuffled_labels(n_per_class, len(classes), seed=2),
              "test": _shuffled_labels(n_per_class, len(classes), seed=3),
              "unlabeled": np.arange(n_unlabeled) % len(classes)}
    for split, labels in splits.items():
        # Column-major: each image is stored as (channel, column, row).
        (folder / f"{split}_X.bin").write_bytes(marked_images(labels, 96, 96).transpose(0, 3, 2, 1).tobytes())
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    return folder


def write_image_folder(root, n_per_class: int = 3, classes=("cat", "dog", "fox"),
                       splits=("train", "val"), sizes=((48, 48), (40, 64), (72, 56))) -> Path:
    """An ImageFolder tree root/images/<split>/<class>/<i>.png, image i of size sizes[i % len]
    (height, width). Returns root/images."""
    from PIL import Image

    folder = Path(root) / "images"
    for split in splits:
        for k, name in enumerate(classes):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                h, w = sizes[i % len(sizes)]
                Image.fromarray(marked_images([k], h, w)[0]).save(folder / split / name / f"{i:03d}.png")
    return folder


def coco_layout(n_images: int, n_classes: int) -> list[tuple[int, int, list]]:
    """(height, width, objects) per image; an object is (class index, x, y, w, h), largest
    first. Image i holds i % 4 objects side by side (image 0 none); every third image also
    holds a small object inside its first one."""
    sizes = ((48, 64), (60, 40), (56, 56))
    layout = []
    for i in range(n_images):
        h, w = sizes[i % len(sizes)]
        objects = [((i + j) % n_classes, j * w // 3 + 2, 3 + 2 * j, w // 3 - 4, h - 6 - 8 * j) for j in range(i % 4)]
        if objects and i % 3 == 0:
            _, x, y, bw, bh = objects[0]
            objects.append(((i + 1) % n_classes, x + bw // 2 - 4, y + bh // 2 - 4, 8, 8))
        layout.append((h, w, objects))
    return layout


def write_coco(root, n_images: int = 8, classes=("bus", "cat", "dog")) -> tuple[Path, Path]:
    """COCO-format detection data under root: PNG images in root/coco/images and
    root/coco/annotations/instances.json, laid out by coco_layout. Category ids are 2, 5, 8,
    ... listed in reverse; image ids start at 100 and are listed in reverse. Segmentations are
    polygons, except a compressed RLE for image 2's second object; image 1 also holds an
    iscrowd annotation (an uncompressed RLE, as COCO's crowds) larger than any object.
    Returns (images folder, annotations file)."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    folder = Path(root) / "coco"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    cat_ids = [2 + 3 * k for k in range(len(classes))]
    images, anns = [], []
    for i, (h, w, objects) in enumerate(coco_layout(n_images, len(classes))):
        img_id = 100 + i
        pixels = np.empty((h, w, 3), np.uint8)
        pixels[:] = BACKGROUND
        for j, (k, x, y, bw, bh) in enumerate(objects):
            pixels[y:y + bh, x:x + bw] = class_colour(k)
            segmentation = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
            if (i, j) == (2, 1):  # one compressed RLE, as COCO's own results files hold
                mask = np.zeros((h, w), np.uint8, order="F")
                mask[y:y + bh, x:x + bw] = 1
                segmentation = mask_utils.encode(mask)
                segmentation["counts"] = segmentation["counts"].decode("ascii")
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat_ids[k],
                         "bbox": [x, y, bw, bh], "area": bw * bh, "segmentation": segmentation, "iscrowd": 0})
        if i == 1:
            mask = np.zeros((h, w), np.uint8)
            mask[h // 2:, :] = 1  # the lower half
            # Uncompressed RLE: column-major run lengths, alternating 0s and 1s, 0s first.
            flat = mask.flatten(order="F")
            bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
            runs = ([0] if flat[0] else []) + np.diff(bounds).tolist()
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat_ids[0],
                         "bbox": [0, h // 2, w, h - h // 2], "area": int(mask.sum()),
                         "segmentation": {"counts": runs, "size": [h, w]}, "iscrowd": 1})
        name = f"{img_id:012d}.png"
        Image.fromarray(pixels).save(folder / "images" / name)
        images.append({"id": img_id, "file_name": name, "height": h, "width": w})
    dataset = {"info": {"description": "rethink test fixture"}, "licenses": [], "images": images[::-1],
               "annotations": anns, "categories": [{"id": c, "name": n, "supercategory": "thing"}
                                                   for c, n in zip(cat_ids, classes)][::-1]}
    annotations = folder / "annotations" / "instances.json"
    annotations.write_text(json.dumps(dataset))
    return folder / "images", annotations
