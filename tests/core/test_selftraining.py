"""Self-training and SimCLR on constructed inputs: pseudo-label thresholds and targets, box filtering,
the loss normalisation, NT-Xent, and a noisy student trained end to end on a tiny world."""
import math

import pandas as pd
import pytest
import torch

from rethink.core.training import selftrain
from rethink.study import runs
from rethink.core.data import world as W
from rethink.core.data.tasks import load_task_data, to_unit_nchw
from rethink.core.training.pseudo import (LossNormaliser, pseudo_label, pseudo_label_boxes, pseudo_label_classes, pseudo_label_quality)
from rethink.core.training.selfsup import nt_xent
from rethink.core.training.config import TrainConfig
from rethink.core.training.loop import fit
from rethink.core.training.checkpoints import new_model


def test_pseudo_labels_keep_only_confident_images():
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.7, 0.2]]))
    keep, soft = pseudo_label_classes(logits, threshold=0.6, soft=True)
    assert keep.tolist() == [True, False, True]
    assert torch.allclose(soft[2], torch.tensor([0.1, 0.7, 0.2]))  # the teacher's distribution
    keep, hard = pseudo_label_classes(logits, threshold=0.0, soft=False)
    assert keep.all() and hard.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0]]
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="pseudo_threshold"):
            pseudo_label_classes(logits, threshold=bad, soft=True)


def heat_peaks(peaks, classes=3, size=8):
    """Detector outputs with one heat-map peak per (image, class, y, x, score) and box sides of 2 cells."""
    heat = torch.full((2, classes, size, size), -20.0)
    for image, cls, y, x, score in peaks:
        heat[image, cls, y, x] = math.log(score / (1 - score))
    return {"heatmap": heat, "size": torch.full((2, 2, size, size), math.log(2.0))}


def test_pseudo_boxes_above_the_score_threshold_become_targets():
    outputs = heat_peaks([(0, 1, 2, 2, 0.9), (0, 2, 6, 6, 0.3), (1, 0, 0, 0, 0.8)])
    boxes, labels = pseudo_label_boxes(outputs, stride=4, threshold=0.5, max_boxes=4, image_size=32)
    assert boxes.shape == (2, 4, 4) and labels.shape == (2, 4)
    assert sorted(labels[0].tolist()) == [-1, -1, -1, 1]  # the 0.3 box is dropped, the rest is padding
    kept = boxes[0][labels[0] == 1][0]
    assert kept.tolist() == pytest.approx([6.0, 6.0, 14.0, 14.0])  # centre (10, 10), side 2 cells of 4 px
    corner = boxes[1][labels[1] == 0][0]
    assert corner.tolist() == pytest.approx([0.0, 0.0, 6.0, 6.0])  # clipped to the image
    assert (boxes[labels < 0] == 0).all()
    _, labels = pseudo_label_boxes(outputs, stride=4, threshold=0.2, max_boxes=4, image_size=32)
    assert (labels[0] >= 0).sum() == 2


def test_the_loss_normalisation_rescales_the_pseudo_loss_to_the_human_one():
    normalise = LossNormaliser(alpha=1.0)
    human, pseudo = torch.tensor(2.0, requires_grad=True), torch.tensor(8.0, requires_grad=True)
    loss = normalise(human, pseudo)
    assert loss.item() == pytest.approx((2 + (2 / 8) * 8) / 2)
    loss.backward()
    assert human.grad.item() == pytest.approx(0.5) and pseudo.grad.item() == pytest.approx(0.5 * 2 / 8)
    # The ratio follows moving averages, not the current batch alone.
    normalise(torch.tensor(4.0), torch.tensor(8.0))
    assert normalise.avg_human.item() == pytest.approx(0.9 * 2 + 0.1 * 4)
    assert normalise.avg_pseudo.item() == pytest.approx(8.0)
    plain = LossNormaliser(alpha=3.0, normalise=False)
    assert plain(torch.tensor(2.0), torch.tensor(8.0)).item() == pytest.approx(2 + 3 * 8)
    with pytest.raises(ValueError, match="pseudo_weight"):
        LossNormaliser(alpha=-1)


def test_nt_xent_on_constructed_embeddings():
    n, tau = 4, 0.5
    z = torch.eye(n, 8)
    # Both views identical and the images orthogonal: the positive scores 1/tau, every negative 0.
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert nt_xent(z, z, tau).item() == pytest.approx(expected)
    assert nt_xent(3 * z, z, tau).item() == pytest.approx(expected)  # cosine: the scale is irrelevant
    swapped = z[[1, 0, 3, 2]]  # each view paired with another image's
    assert nt_xent(z, swapped, tau).item() > expected + 1
    z1 = torch.randn(6, 5, requires_grad=True)
    nt_xent(z1, torch.randn(6, 5), 0.2).backward()
    assert torch.isfinite(z1.grad).all()


def test_algorithms_are_registered_by_name():
    assert {"supervised", "noisy_student", "sequential"} <= set(selftrain.ALGORITHMS)
    with pytest.raises(ValueError, match="method must be one of .*noisy_student"):
        selftrain.check_method("mean_teacher")
    with pytest.raises(ValueError, match="pseudo_threshold"):
        selftrain.SelfTraining(threshold=2)


@pytest.fixture(scope="module")
def teacher_and_pool(tiny_world):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    teacher = new_model(data, "resnet9", 8, "gn", seed=0)
    fit(teacher, data, data, TrainConfig(epochs_1x=9, batch_size=64, warmup_steps=4, lr=0.1, evals=1, progress=False))
    spec = W.WorldSpec(image_size=32, texture=0.2, color=0.2, viewpoint=0.2, lighting=0.2, clutter=0.2)
    pool = W.generate_classification(96, W.DOWNSTREAM_CLASSES[:4] + W.UPSTREAM_CLASSES[:2], spec, seed=9)
    return data, teacher, pool


def top_probability(teacher, images: torch.Tensor) -> torch.Tensor:
    """The teacher's confidence in each image: its top class probability, as pseudo-labelling thresholds it."""
    with torch.no_grad():
        return teacher(to_unit_nchw(images)).softmax(1).max(1).values


def test_pseudo_labelling_a_pool_matches_the_threshold_and_reports_quality(teacher_and_pool):
    data, teacher, pool = teacher_and_pool
    images = torch.from_numpy(pool["images"])
    confidence = top_probability(teacher, images)
    threshold = confidence.median().item()  # a short run's teacher is far from confident: keep about half
    pseudo, info = pseudo_label(teacher, images, "classify", data.classes, threshold=threshold)
    confident = confidence >= threshold
    assert info["kept"] == len(pseudo) == int(confident.sum()) and 0 < len(pseudo) < len(images)
    assert torch.equal(pseudo.images, images[confident])
    assert torch.allclose(pseudo.labels.sum(1), torch.ones(len(pseudo)))  # soft labels are distributions
    quality = pseudo_label_quality(info, pool["labels"], pool["classes"], data.classes)
    assert quality["kept_share"] == pytest.approx(info["kept"] / 96)
    assert 0 <= quality["in_domain_share"] <= 1 and 0 <= quality["in_domain_accuracy"] <= 1
    assert quality["in_domain_accuracy"] > 0.25  # better than chance: the teacher learned its 4 classes


def test_pseudo_label_quality_counts_out_of_domain_images():
    info = {"kept": 3, "pool": 4, "kept_index": torch.tensor([0, 1, 3]), "kept_class": torch.tensor([0, 1, 1])}
    quality = pseudo_label_quality(info, [0, 1, 2, 2], ["a", "b", "up"], ("a", "b"))
    assert quality == {"kept_share": 0.75, "in_domain_share": pytest.approx(2 / 3), "in_domain_accuracy": 1.0}


def test_noisy_student_trains_on_labels_and_pseudo_labels(teacher_and_pool):
    data, teacher, pool = teacher_and_pool
    student = new_model(data, "resnet9", 8, "gn", seed=1)
    # fp32, as top_probability scores the pool: on a CPU with fast bf16, `auto` would label it in bf16.
    cfg = TrainConfig(epochs_1x=1, batch_size=64, lr=0.05, aug="S4", evals=1, progress=False, precision="fp32")
    images = torch.from_numpy(pool["images"])
    confidence = top_probability(teacher, images)
    threshold = confidence.median().item()
    history, info = selftrain.ALGORITHMS["noisy_student"](student, data, data, cfg, "student", teacher=teacher,
                                                        pool=images,
                                                        selftrain=selftrain.SelfTraining(threshold=threshold,
                                                                                         batch_size=32))
    metrics = {r["metric"]: r["value"] for r in history}
    # The student sees exactly the pool images its teacher is confident about, and learns from them.
    assert info["kept"] == int((confidence >= threshold).sum()) and 0 < info["kept"] < len(images)
    assert metrics["pseudo_loss"] > 0 and math.isfinite(metrics["loss"])
    history, _ = selftrain.ALGORITHMS["sequential"](new_model(data, "resnet9", 8, "gn", seed=1), data, data, cfg,
                                                  "sequential", teacher=teacher, pool=torch.from_numpy(pool["images"]),
                                                  selftrain=selftrain.SelfTraining(threshold=0.0))
    phases = pd.DataFrame(history)
    assert phases.split.str.startswith("pseudo_phase_").any()
    assert phases[phases.split == "val"].step.min() > phases[phases.split == "pseudo_phase_val"].step.max()


def test_a_detector_student_trains_on_pseudo_boxes_beside_its_labels(tiny_world):
    """The pseudo boxes reach the student's gradient: the same student trained without them ends elsewhere."""
    data = load_task_data(tiny_world / "scenes_train.npz", "detect")
    teacher = new_model(data, "resnet9", 8, "gn", seed=0)
    pseudo, info = pseudo_label(teacher, data.images, "detect", data.classes, threshold=0.05)
    assert pseudo.boxes.shape[:2] == pseudo.labels.shape and len(pseudo) == len(data)
    assert info["kept"] == int((pseudo.labels >= 0).sum()) > 0
    cfg = TrainConfig(epochs_1x=1, batch_size=16, lr=0.02, grad_clip=5.0, evals=1, progress=False)
    student, alone = (new_model(data, "resnet9", 8, "gn", seed=1) for _ in range(2))
    history = fit(student, data, data, cfg, pseudo=pseudo, pseudo_batch_size=8, combine=LossNormaliser())
    fit(alone, data, data, cfg)
    pseudo_loss = [r["value"] for r in history if r["metric"] == "pseudo_loss"]
    assert pseudo_loss and all(v > 0 and math.isfinite(v) for v in pseudo_loss)
    assert any(not torch.equal(a, b) for a, b in zip(student.state_dict().values(), alone.state_dict().values()))


def test_a_student_run_is_cached_after_its_teacher(student_run, tmp_path):
    kwargs = dict(student_run, selftrain=selftrain.SelfTraining(threshold=0.0))
    digest, rows = runs.run_arm(**kwargs)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2  # the teacher, then the student
    assert {r["metric"] for r in rows if r["split"] == "pseudo"} == {"kept_share", "in_domain_share",
                                                                      "in_domain_accuracy"}
    assert runs.run_arm(**kwargs) == (digest, rows)  # read back
    other, _ = runs.run_arm(**{**kwargs, "selftrain": selftrain.SelfTraining(threshold=0.2)})
    assert other != digest and len(list((tmp_path / "runs").glob("*.json"))) == 3  # same teacher, new student


def test_sweep_checks_inits_and_pseudo_settings_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(selftrain, "fit", lambda *a, **k: pytest.fail("trained before checking the settings"))
    settings = dict(world_dir=str(tmp_path), upstream_checkpoint="up.pt", runs_dir=str(tmp_path), arch="resnet9",
                    width=8, norm="gn")
    with pytest.raises(ValueError, match="init 'imagenet' unknown; allowed: scratch, pretrained, simclr"):
        runs.sweep([dict(seed=0), dict(init="imagenet")], settings, task="classify", checkpoints={"simclr": "s.pt"})
    with pytest.raises(ValueError, match="pseudo_threshold"):
        runs.sweep([dict(seed=0, method="noisy_student", pseudo_threshold=1.5)], settings, task="classify")
    with pytest.raises(ValueError, match="method must be one of"):
        runs.sweep([dict(seed=0, method="fixmatch")], settings, task="classify")


def test_joint_training_trains_the_upstream_task_beside_the_downstream_one(tiny_world):
    """Zoph et al.'s joint training: a second head on the shared backbone learns the upstream labels in the same
    run; it is dropped at the end, and the backbone differs from the downstream-only run's."""
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    upstream = load_task_data(tiny_world / "classify_val.npz", "classify")  # any labelled set stands in
    cfg = TrainConfig(epochs_1x=2, batch_size=64, lr=0.05, aug="S1", evals=1, progress=False)
    plain = new_model(data, "resnet9", 8, "gn", seed=1)
    fit(plain, data, data, cfg)
    model = new_model(data, "resnet9", 8, "gn", seed=1)
    head = torch.nn.Linear(model.backbone.channels[-1], len(upstream.classes))
    before = head.weight.detach().clone()
    history = fit(model, data, data, cfg, auxiliary=selftrain.Auxiliary(upstream, head, 32, LossNormaliser()))
    assert not torch.equal(head.weight, before), "the upstream head trained"
    assert not hasattr(model, "auxiliary_head") and set(model.state_dict()) == set(plain.state_dict())
    assert {r["metric"] for r in history} >= {"loss", "auxiliary_loss", "accuracy"}
    assert not torch.equal(model.backbone.stem[0].weight, plain.backbone.stem[0].weight)


def test_joint_runs_are_cached_by_their_upstream_set_and_stack_with_self_training(student_run, tiny_world, tmp_path):
    kwargs = dict(student_run, selftrain=selftrain.SelfTraining(threshold=0.0),
                  upstream_file=str(tiny_world / "classify_val.npz"))
    with pytest.raises(ValueError, match="upstream_file"):
        runs.run_arm(**{**kwargs, "method": "joint", "upstream_file": None})
    joint, rows = runs.run_arm(**{**kwargs, "method": "joint"})
    assert "auxiliary_loss" in {r["metric"] for r in rows}
    both, rows = runs.run_arm(**{**kwargs, "method": "joint_noisy_student"})
    assert {"auxiliary_loss", "pseudo_loss"} <= {r["metric"] for r in rows}
    assert any(r["split"] == "pseudo" for r in rows)  # the pseudo-labels' quality, as for noisy_student
    assert len({joint, both}) == 2 and len(list((tmp_path / "runs").glob("*.json"))) == 3  # + the teacher
