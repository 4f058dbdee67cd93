import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch


class _WithoutDali:
    """RETHINK_WITHOUT_DALI=1: NVIDIA DALI cannot be imported, as on an install without the [dali] extra."""

    def find_spec(self, name, path=None, target=None):
        if name == "nvidia.dali" or name.startswith("nvidia.dali."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by RETHINK_WITHOUT_DALI)", name=name)
        return None


if os.environ.get("RETHINK_WITHOUT_DALI"):
    sys.meta_path.insert(0, _WithoutDali())

from rethink.core.data import world as W
from rethink.core.augment.ladder import DALI_EXTRA, dali_installed

requires_dali = pytest.mark.skipif(not dali_installed(), reason=f"needs NVIDIA DALI ({DALI_EXTRA})")


@pytest.fixture
def accelerator() -> str:
    """The device of a `cuda`-marked test: CUDA where torch sees one. Without one the test is skipped, unless
    RETHINK_CUDA_TESTS_ON_CPU=1 (benchmarks/gpu_check.py --dry-run), which walks the same code on the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("RETHINK_CUDA_TESTS_ON_CPU") == "1":
        return "cpu"
    pytest.skip("needs CUDA (benchmarks/gpu_check.py runs these on a GPU)")


@pytest.fixture
def one_intra_op_thread():
    """For augmentation tests: the tensors are tiny, and on small shared VMs two spinning intra-op threads can
    make Kornia's CPU kernels 10-20x slower; one thread is fast and stable. (Function scope, so it runs after
    any autouse thread setting.)"""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A few hundred small images of every kind, written as the 'world' rule writes them."""
    root = tmp_path_factory.mktemp("world")
    # An easy corner of the world, so that a few dozen steps visibly learn.
    easy = dict(texture=0.2, color=0.2, viewpoint=0.2, lighting=0.2, clutter=0.2)
    spec = W.WorldSpec(image_size=32, **easy)
    scene_spec = W.WorldSpec(image_size=64, **easy)
    W.save_world(root / "classify_train.npz", W.generate_classification(256, W.DOWNSTREAM_CLASSES[:4], spec, seed=1))
    W.save_world(root / "classify_val.npz", W.generate_classification(64, W.DOWNSTREAM_CLASSES[:4], spec, seed=2))
    W.save_world(root / "scenes_train.npz", W.generate_scenes(64, W.DOWNSTREAM_CLASSES[:4], scene_spec, seed=3,
                                                              max_objects=2))
    W.save_world(root / "scenes_val.npz", W.generate_scenes(16, W.DOWNSTREAM_CLASSES[:4], scene_spec, seed=4,
                                                            max_objects=2))
    return root


@pytest.fixture
def student_run(tiny_world, tmp_path):
    """study.run_arm's arguments for a noisy student on the tiny world, with a pool of its own."""
    from rethink.core.training.config import TrainConfig

    spec = W.WorldSpec(image_size=32, texture=0.2, color=0.2, viewpoint=0.2, lighting=0.2, clutter=0.2)
    W.save_world(tmp_path / "pool.npz", W.generate_classification(64, W.DOWNSTREAM_CLASSES[:4], spec, seed=5))
    return dict(train_file=str(tiny_world / "classify_train.npz"), val_file=str(tiny_world / "classify_val.npz"),
                task="classify", init="scratch", checkpoint=None, runs_dir=str(tmp_path / "runs"),
                model=dict(arch="resnet9", width=8, norm="gn"), label_fraction=0.5, desc="test",
                train=TrainConfig(epochs_1x=1, batch_size=64, evals=1, progress=False),
                unlabeled_file=str(tmp_path / "pool.npz"), method="noisy_student")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


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


@pytest.fixture(scope="session")
def cifar10_path(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def stl10_path(tmp_path_factory) -> Path:
    return write_stl10(tmp_path_factory.mktemp("stl10"))


@pytest.fixture(scope="session")
def image_folder_path(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("image_folder"))


@pytest.fixture(scope="session")
def coco_paths(tmp_path_factory) -> tuple[Path, Path]:
    return write_coco(tmp_path_factory.mktemp("coco"))
