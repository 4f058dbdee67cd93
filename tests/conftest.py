import pytest
import torch

from rethink import world as W


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


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
