import pytest
import torch

from rethink import world as W


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A few hundred small images of every kind, written as the 'world' rule writes them."""
    root = tmp_path_factory.mktemp("world")
    spec = W.WorldSpec(image_size=32)
    scene_spec = W.WorldSpec(image_size=64)
    W.save_world(root / "classify_train.npz", W.generate_classification(256, W.DOWNSTREAM_CLASSES[:4], spec, seed=1))
    W.save_world(root / "classify_val.npz", W.generate_classification(64, W.DOWNSTREAM_CLASSES[:4], spec, seed=2))
    W.save_world(root / "scenes_train.npz", W.generate_scenes(64, W.DOWNSTREAM_CLASSES[:4], scene_spec, seed=3,
                                                              max_objects=2))
    W.save_world(root / "scenes_val.npz", W.generate_scenes(16, W.DOWNSTREAM_CLASSES[:4], scene_spec, seed=4,
                                                            max_objects=2))
    return root


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
