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


@pytest.fixture
def student_run(tiny_world, tmp_path):
    """study.run_arm's arguments for a noisy student on the tiny world, with a pool of its own."""
    from rethink.train import TrainConfig

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
