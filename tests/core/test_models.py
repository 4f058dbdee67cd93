import pytest
import torch

from rethink.core.models.nets import build_model


@pytest.mark.parametrize("arch", ["resnet9", "resnet18"])
@pytest.mark.parametrize("norm", ["gn", "bn", "none"])
def test_output_shapes(arch, norm):
    images = torch.rand(2, 3, 64, 64)
    assert build_model(arch=arch, norm=norm, task="classify", num_classes=5)(images).shape == (2, 5)
    assert build_model(arch=arch, norm=norm, task="segment", num_classes=5)(images).shape == (2, 6, 64, 64)
    det = build_model(arch=arch, norm=norm, task="detect", num_classes=5)(images)
    assert det["heatmap"].shape == (2, 5, 16, 16) and det["size"].shape == (2, 2, 16, 16)


def test_norm_choice_changes_layers():
    kinds = {norm: {type(m).__name__ for m in build_model(norm=norm).modules()} for norm in ("gn", "bn", "none")}
    assert "GroupNorm" in kinds["gn"] and "BatchNorm2d" not in kinds["gn"]
    assert "BatchNorm2d" in kinds["bn"] and "GroupNorm" not in kinds["bn"]
    assert not {"GroupNorm", "BatchNorm2d"} & kinds["none"]


@pytest.mark.parametrize("key,value", [("norm", "layer"), ("arch", "vgg"), ("task", "depth")])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"model {key} must be one of"):
        build_model(**{key: value})


def test_unknown_key_is_an_error():
    with pytest.raises(TypeError):
        build_model(depth=50)


def test_small_batch_norm_normalises_each_device_batch_alone():
    from rethink.core.models.nets import SmallBatchNorm2d

    torch.manual_seed(0)
    x = torch.randn(8, 4, 5, 5) * 3 + torch.arange(8.0).view(8, 1, 1, 1)  # every image has its own offset
    layer = SmallBatchNorm2d(4, device_batch=2)
    y = layer(x)
    # as if each pair of images were on its own GPU with a plain BatchNorm
    expected = torch.cat([torch.nn.functional.batch_norm(p, None, None, training=True) for p in x.split(2)])
    assert torch.allclose(y, expected, atol=1e-5)
    whole = torch.nn.functional.batch_norm(x, None, None, training=True)
    assert not torch.allclose(y, whole, atol=1e-2)  # not what BatchNorm over the whole batch gives
    assert layer.num_batches_tracked > 0 and not torch.allclose(layer.running_mean, torch.zeros(4))
    layer.eval()  # evaluation uses the running statistics, as nn.BatchNorm2d does
    mean, var = layer.running_mean.view(1, 4, 1, 1), layer.running_var.view(1, 4, 1, 1)
    assert torch.allclose(layer(x), (x - mean) / torch.sqrt(var + layer.eps), atol=1e-5)


def test_small_batch_norm_refuses_a_batch_that_does_not_split():
    from rethink.core.models.nets import SmallBatchNorm2d

    with pytest.raises(ValueError, match="per-device batches of 3"):
        SmallBatchNorm2d(4, device_batch=3)(torch.randn(8, 4, 2, 2))


def test_bn_batch_picks_the_small_batch_layer():
    from rethink.core.models.nets import SmallBatchNorm2d

    assert any(isinstance(m, SmallBatchNorm2d) for m in build_model(norm="bn", bn_batch=2).modules())
    assert not any(isinstance(m, SmallBatchNorm2d) for m in build_model(norm="bn").modules())
    with pytest.raises(ValueError, match="bn_batch"):
        build_model(norm="bn", bn_batch=-1)


@pytest.mark.parametrize("norm,bn_batch", [("gn", 0), ("bn", 0), ("bn", 2), ("none", 0)])
def test_every_norm_trains_under_bf16_autocast(norm, bn_batch):
    """precision: bf16 runs the convolutions in bf16; normalisation statistics stay fp32."""
    model = build_model(norm=norm, bn_batch=bn_batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(torch.rand(8, 3, 32, 32)).float().logsumexp(1).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in model.buffers())
