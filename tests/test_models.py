import pytest
import torch

from rethink.models import build_model


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
