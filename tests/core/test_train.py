import dataclasses

import pytest
import torch

from rethink.core.data.tasks import to_unit_nchw
from rethink.core.training import batches, hardware, loop
from rethink.core.data.tasks import load_task_data
from rethink.core.training.registry import Registry
from rethink.core.training.schedule import steps_per_epoch
from rethink.core.training.config import TrainConfig
from rethink.core.training.evaluation import evaluate
from rethink.core.training.schedule import evaluation_steps, step_schedule
from rethink.core.training.loop import fit
from rethink.core.training.checkpoints import init_from_checkpoint, load_checkpoint, new_model, save_checkpoint


def test_lr_drops_put_the_steps_at_shares_of_the_run_and_are_checked():
    assert step_schedule(90, 90, (0.3333, 0.6)) == [30, 54]
    assert step_schedule(90, 30, (0.3333, 0.6)) == [30, 54]  # whatever the 1x
    assert TrainConfig(lr_drops=[0.5]).lr_drops == (0.5,)  # YAML's list, hashable and keyed alike
    for bad in ([0.6, 0.3], [0.0, 0.5], [1.0]):
        with pytest.raises(ValueError, match="lr_drops"):
            TrainConfig(lr_drops=bad)


def test_step_schedule_drops_at_fixed_distances_from_the_end():
    # He et al.: 90k-iteration 1x drops at 30k and 70k; a 2x (180k) at 120k and 160k.
    assert step_schedule(90, 90) == [30, 70]
    assert step_schedule(180, 90) == [120, 160]


def test_three_evaluations_spread_over_the_stretch_after_the_last_lr_drop():
    # He et al.'s 6x of a 124-step 1x: drops at 661 and 716, so of six even evaluations only the last follows them;
    # three then spread over the 28 steps after 716: 716 + 28/3 -> 725, 716 + 56/3 -> 735, and 744.
    drops = step_schedule(744, 124)
    assert drops == [661, 716]
    assert evaluation_steps(744, 6, drops) == [124, 248, 372, 496, 620, 725, 735, 744]
    # Drops before the last third: the even evaluations are left alone.
    assert evaluation_steps(800, 6, step_schedule(800, 800, (0.45, 0.6))) == [133, 267, 400, 533, 667, 800]
    assert evaluation_steps(10, 1, [9]) == [10]  # one evaluation asked for, one made


def test_each_evaluation_records_the_lr_it_trained_at(tiny_world):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    # 4 steps an epoch, 36 in 1x, 108 at 3x: He et al.'s drops after 84 and 100 steps; three evaluations spread over
    # the 8 steps after the last drop: 100 + 8/3 -> 103, 100 + 16/3 -> 105, and 108.
    cfg = TrainConfig(epochs_1x=9, schedule=3, batch_size=64, warmup_steps=4, lr=0.1, evals=3, progress=False)
    history = fit(model, data, data, cfg)
    lrs = {row["step"]: row["value"] for row in history if row["metric"] == "lr"}
    assert lrs == pytest.approx({36: 0.1, 72: 0.1, 103: 0.001, 105: 0.001, 108: 0.001})


def test_lr_follows_warmup_and_steps(tiny_world):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    cfg = TrainConfig(epochs_1x=9, batch_size=64, warmup_steps=4, lr=0.1, evals=1, progress=False)
    seen = []
    # 256 images / 64 = 4 steps per epoch, 36 steps in 1x: drops after 12 and 28 steps.
    original = loop.make_scheduler

    def spy(optimizer, *args):
        scheduler = original(optimizer, *args)
        step = scheduler.step

        def recording_step():
            step()
            seen.append(optimizer.param_groups[0]["lr"])
        scheduler.step = recording_step
        return scheduler
    loop.make_scheduler = spy
    try:
        fit(model, data, data, cfg)
    finally:
        loop.make_scheduler = original
    assert len(seen) == 36
    assert seen[0] < 0.1 and seen[5] == pytest.approx(0.1)
    assert seen[12] == pytest.approx(0.01) and seen[28] == pytest.approx(0.001)


@pytest.mark.parametrize("task,files", [("classify", "classify"), ("segment", "scenes"), ("detect", "scenes")])
def test_training_lowers_the_loss(tiny_world, task, files):
    train = load_task_data(tiny_world / f"{files}_train.npz", task)
    model = new_model(train, "resnet9", 8, "gn", seed=0)
    before = evaluate(model, train)["loss"]
    # Detectors clip their gradients, as the study's do: unclipped, this tiny set spikes in fp32 and diverges in bf16.
    cfg = TrainConfig(epochs_1x=12, batch_size=32, lr=0.05, warmup_steps=5, grad_clip=5.0 if task == "detect" else 0.0,
                      aug="S0", evals=1, progress=False)
    history = fit(model, train, train, cfg)
    after = evaluate(model, train)["loss"]
    assert after < 0.8 * before
    assert {r["metric"] for r in history if r["split"] == "val"} >= {"loss"}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_numbers(tiny_world, precision):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    cfg = TrainConfig(epochs_1x=1, batch_size=64, evals=1, progress=False, aug="S1", precision=precision)
    runs = [fit(new_model(data, "resnet9", 8, "gn", seed=3), data, data, cfg) for _ in range(2)]
    assert runs[0] == runs[1]
    other = fit(new_model(data, "resnet9", 8, "gn", seed=4), data, data, dataclasses.replace(cfg, seed=4))
    assert other != runs[0]
    if precision == "bf16":  # really a different computation, not fp32 under another name
        fp32 = fit(new_model(data, "resnet9", 8, "gn", seed=3), data, data, dataclasses.replace(cfg, precision="fp32"))
        assert fp32 != runs[0]


def test_precision_resolves_auto_by_device_and_cpu(monkeypatch):
    assert hardware.resolve_precision("fp32", "cuda") == "fp32" and hardware.resolve_precision("bf16", "cpu") == "bf16"
    assert hardware.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert hardware.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16; got 'fp16'"):
        TrainConfig(precision="fp16")


def test_evaluation_runs_at_the_training_precision(tiny_world, monkeypatch):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    dtypes = []
    model.head.fc.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    fp32, bf16 = evaluate(model, data, precision="fp32"), evaluate(model, data, precision="bf16")
    assert set(dtypes[: len(dtypes) // 2]) == {torch.float32} and set(dtypes[len(dtypes) // 2:]) == {torch.bfloat16}
    assert fp32["accuracy"] == pytest.approx(bf16["accuracy"], abs=0.1) and fp32 != bf16


def test_checkpoint_round_trip_and_errors(tiny_world, tmp_path):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    path = tmp_path / "up.pt"
    save_checkpoint(path, model)
    fresh = init_from_checkpoint(new_model(data, "resnet9", 8, "gn", seed=1), path)
    assert torch.equal(fresh.backbone.stem[0].weight, model.backbone.stem[0].weight)
    with pytest.raises(ValueError, match="norm="):
        init_from_checkpoint(new_model(data, "resnet9", 8, "bn", seed=1), path)
    path.write_bytes(path.read_bytes()[:100])  # truncated, as after a crash mid-copy
    with pytest.raises(ValueError, match="corrupted"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="pretrain"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("fraction", [0, 2, -0.5])
def test_bad_label_fraction_names_the_parameter(tiny_world, fraction):
    with pytest.raises(ValueError, match="label_fraction must be in"):
        load_task_data(tiny_world / "classify_train.npz", "classify", label_fraction=fraction)


def test_label_fraction_keeps_a_share(tiny_world):
    assert len(load_task_data(tiny_world / "classify_train.npz", "classify", label_fraction=0.25)) == 64


def test_bad_train_config_names_the_parameter():
    with pytest.raises(ValueError, match="aug"):
        TrainConfig(aug="S9")
    with pytest.raises(ValueError, match="aug_backend"):
        TrainConfig(aug_backend="opencv")
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule=0)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=-1)


def test_grad_clip_bounds_every_update(tiny_world, monkeypatch):
    """With clipping on, no SGD step sees a gradient norm above grad_clip (a detector's spike cannot blow up)."""
    data = load_task_data(tiny_world / "scenes_train.npz", "detect")
    norms = []
    original = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    cfg = TrainConfig(epochs_1x=1, batch_size=16, lr=0.05, warmup_steps=1, evals=1, progress=False, grad_clip=0.5)
    fit(new_model(data, "resnet9", 8, "gn", seed=0), data, data, cfg)
    assert len(norms) == 4 and max(norms) <= 0.5 + 1e-4
    norms.clear()
    fit(new_model(data, "resnet9", 8, "gn", seed=0), data, data, dataclasses.replace(cfg, grad_clip=0.0))
    assert max(norms) > 0.5  # without clipping the same run's gradients are larger


def test_augmented_batches_keep_targets_with_their_images_across_calls(tiny_world):
    """Several steps' batches go through one augmentation call; each step gets back its own images and targets."""
    data = load_task_data(tiny_world / "scenes_train.npz", "detect")
    calls = []

    def identity(images, targets):  # S0 stands in for any augmentation: the split is what is tested
        calls.append(len(images))
        return to_unit_nchw(images), targets
    index = [torch.arange(i, 64, 4) for i in range(4)] * 2  # 8 steps of 16 images
    steps = batches.augmented_batches(data, identity, iter(index), per_call=3)
    for i, (images, (boxes, labels)) in zip(range(7), steps):
        assert torch.equal(images, to_unit_nchw(data.images[index[i]]))
        assert torch.equal(boxes, data.boxes[index[i]]) and torch.equal(labels, data.labels[index[i]])
    assert calls == [48, 48, 32]  # 3 + 3 steps, then the 2 left
    assert batches.steps_per_call(128) == 4 and batches.steps_per_call(32) == 16 and batches.steps_per_call(1024) == 1


def test_auto_device_warns_when_gpus_exist_that_torch_cannot_use(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "nvidia_devices", lambda: ["/dev/nvidia0"])
    with pytest.warns(RuntimeWarning, match=r"/dev/nvidia0.*cannot use them.*driver"):
        assert hardware.resolve_device("auto") == "cpu"
    monkeypatch.setattr(hardware, "nvidia_devices", lambda: [])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no GPU at all: no warning
        assert hardware.resolve_device("auto") == "cpu"


def test_the_test_split_scores_the_model_selected_on_validation(tiny_world):
    """With a test split, fit keeps the evaluation with the best validation accuracy (the earliest of ties) and
    scores that model once on the test split at the end. With the validation images as the test split, the test
    rows must repeat the selected evaluation's validation scores, at its step; the model fit leaves is the last one."""
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    model = new_model(data, "resnet9", 8, "gn", seed=0)
    # An LR that overshoots late, so that the best evaluation need not be the last.
    cfg = TrainConfig(epochs_1x=12, batch_size=32, lr=0.3, warmup_steps=2, evals=6, progress=False)
    history = fit(model, data, data, cfg, test=data)
    val = {r["step"]: r["value"] for r in history if r["split"] == "val" and r["metric"] == "accuracy"}
    test = [r for r in history if r["split"] == "test"]
    best = max(val.values())
    selected = min(step for step, value in val.items() if value == best)
    assert {r["step"] for r in test} == {selected} and {r["metric"] for r in test} == {"loss", "accuracy"}
    assert next(r["value"] for r in test if r["metric"] == "accuracy") == best
    losses = {r["step"]: r["value"] for r in history if r["split"] == "val" and r["metric"] == "loss"}
    last_loss = losses[max(losses)]
    # fit evaluates in its own batches: the sums run in another order, about 1e-6 apart on some CPUs. The tolerance
    # is far below the gap to the selected evaluation's loss, the model fit would leave if it kept the best.
    assert evaluate(model, data)["loss"] == pytest.approx(last_loss, rel=1e-4)
    assert selected == max(losses) or abs(losses[selected] - last_loss) > 1e-3 * last_loss


def test_a_registry_names_the_setting_and_refuses_a_second_entry():
    table = Registry("method")

    @table.register("a")
    def a():
        return 1

    assert table["a"] is a and table.check("a") == "a"
    with pytest.raises(ValueError, match="method must be one of a; got 'b'"):
        table.check("b")
    with pytest.raises(ValueError, match="registered twice"):
        table.register("a")(a)


def test_steps_per_epoch_drops_the_ragged_batch_and_keeps_one():
    assert steps_per_epoch(100, 32) == 3
    assert steps_per_epoch(20, 32) == 1  # a set smaller than a batch is one batch
