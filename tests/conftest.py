import os
import sys
from pathlib import Path

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
from helpers import write_cifar10, write_coco, write_image_folder, write_stl10

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs Snakemake, a notebook, a nested pytest or a many-epoch training; "
                                       "`make test-fast` (pytest -m 'not slow') leaves it out, `make test` runs it")




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
