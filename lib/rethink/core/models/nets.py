"""Small ResNets with a choice of normalisation, and the task heads that sit on them.

The backbone returns a feature pyramid (strides 2, 4, 8 of the input) so that one network
serves classification (pool the last level), segmentation and detection (stride-4 features).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

NORMS = ("gn", "bn", "none")
ARCHS = ("resnet9", "resnet18")
TASKS = ("classify", "segment", "detect", "pose")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet9"      # resnet9 (airbench-like) | resnet18 (BasicBlock [2, 2, 2, 2])
    width: int = 16            # channels of the first stage; later stages double it
    norm: str = "gn"           # gn | bn | none
    groups: int = 8            # GroupNorm groups (He et al. use 32 on 256+ channels; we are narrower)
    bn_batch: int = 0          # bn only: images per BatchNorm statistic, as per GPU without SyncBN; 0 = whole batch
    task: str = "classify"     # classify | segment | detect | pose
    num_classes: int = 8

    def __post_init__(self):
        for key, allowed in (("arch", ARCHS), ("norm", NORMS), ("task", TASKS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"model {key} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}")
        if self.width < 4 or self.width % self.groups:
            raise ValueError(f"model width must be >= 4 and a multiple of groups={self.groups}; got {self.width}")
        if self.bn_batch < 0:
            raise ValueError(f"model bn_batch must be >= 0 (0 = statistics over the whole batch); got {self.bn_batch}")
        if self.num_classes < 1:
            raise ValueError(f"model num_classes must be >= 1; got {self.num_classes}")


class SmallBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics come from groups of `device_batch` images: what
    data-parallel training without SyncBN computes on each GPU (He et al. 2019: 2 images per GPU).
    torch has no such layer; evaluation uses the running statistics, as nn.BatchNorm2d does."""

    def __init__(self, channels: int, device_batch: int):
        super().__init__(channels)
        self.device_batch = device_batch

    def forward(self, x):
        n, c = x.shape[:2]
        if not self.training or n <= self.device_batch:
            return super().forward(x)
        if n % self.device_batch:
            raise ValueError(f"batch of {n} images does not split into per-device batches of {self.device_batch}")
        # statistics in fp32 whatever the autocast dtype, as nn.BatchNorm2d keeps them
        groups = x.float().view(n // self.device_batch, self.device_batch, *x.shape[1:])
        var, mean = torch.var_mean(groups, dim=(1, 3, 4), correction=0, keepdim=True)
        y = ((groups - mean) * torch.rsqrt(var + self.eps)).view_as(x)
        with torch.no_grad():  # running statistics: the average over devices, unbiased as in nn.BatchNorm2d
            count = groups[:, :, 0].numel() // len(groups)
            self.running_mean.lerp_(mean.mean(0).flatten(), self.momentum)
            self.running_var.lerp_(var.mean(0).flatten() * count / max(count - 1, 1), self.momentum)
            self.num_batches_tracked += 1
        return (y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)).to(x.dtype)


def norm_layer(kind: str, channels: int, groups: int, bn_batch: int = 0) -> nn.Module:
    if kind == "gn":
        return nn.GroupNorm(min(groups, channels), channels)
    if kind == "bn":
        return SmallBatchNorm2d(channels, bn_batch) if bn_batch else nn.BatchNorm2d(channels)
    return nn.Identity()


def conv_norm_act(c_in: int, c_out: int, cfg: ModelConfig, stride: int = 1) -> nn.Sequential:
    # Without normalisation the conv keeps its bias; with it the bias would be redundant.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=cfg.norm == "none"),
        norm_layer(cfg.norm, c_out, cfg.groups, cfg.bn_batch),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, channels: int, cfg: ModelConfig):
        super().__init__()
        self.body = nn.Sequential(conv_norm_act(channels, channels, cfg), conv_norm_act(channels, channels, cfg))

    def forward(self, x):
        return x + self.body(x)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, cfg: ModelConfig):
        super().__init__()
        self.conv1 = conv_norm_act(c_in, c_out, cfg, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=cfg.norm == "none"),
                                   norm_layer(cfg.norm, c_out, cfg.groups, cfg.bn_batch))
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          norm_layer(cfg.norm, c_out, cfg.groups, cfg.bn_batch))

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Backbone(nn.Module):
    """Returns [c2, c4, c8]: features at strides 2, 4 and 8 with widths w, 2w, 4w (resnet9) or 2w, 4w, 8w."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.width
        if cfg.arch == "resnet9":
            self.stem = conv_norm_act(3, w, cfg, stride=2)
            self.stages = nn.ModuleList([
                nn.Sequential(conv_norm_act(w, w, cfg), Residual(w, cfg)),
                nn.Sequential(conv_norm_act(w, 2 * w, cfg), nn.MaxPool2d(2)),
                nn.Sequential(conv_norm_act(2 * w, 4 * w, cfg), nn.MaxPool2d(2), Residual(4 * w, cfg)),
            ])
            self.channels = (w, 2 * w, 4 * w)
        else:
            self.stem = conv_norm_act(3, w, cfg, stride=1)
            self.stages = nn.ModuleList([
                nn.Sequential(BasicBlock(w, 2 * w, 2, cfg), BasicBlock(2 * w, 2 * w, 1, cfg)),
                nn.Sequential(BasicBlock(2 * w, 4 * w, 2, cfg), BasicBlock(4 * w, 4 * w, 1, cfg)),
                nn.Sequential(BasicBlock(4 * w, 8 * w, 2, cfg), BasicBlock(8 * w, 8 * w, 1, cfg)),
            ])
            self.channels = (2 * w, 4 * w, 8 * w)

    def forward(self, x):
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ClassifyHead(nn.Module):
    def __init__(self, channels, num_classes):
        super().__init__()
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, features, image_size):
        return self.fc(features[-1].mean(dim=(2, 3)))


class PoseHead(nn.Module):
    """The object's in-plane angle, as (cos, sin) of its phase within the shape's symmetry period, and its
    tilt: three numbers regressed from the pooled features (Newell & Deng's pose task, on our world)."""

    outputs = 3

    def __init__(self, channels, num_classes):
        super().__init__()
        self.fc = nn.Linear(channels[-1], self.outputs)

    def forward(self, features, image_size):
        return self.fc(features[-1].mean(dim=(2, 3)))


class FuseStride4(nn.Module):
    """A two-level FPN: the stride-8 map upsampled and added to a projection of the stride-4 map."""

    def __init__(self, channels, out: int):
        super().__init__()
        self.lateral = nn.Conv2d(channels[1], out, 1)
        self.top = nn.Conv2d(channels[2], out, 1)
        self.smooth = nn.Sequential(nn.Conv2d(out, out, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, features):
        c4, c8 = features[1], features[2]
        return self.smooth(self.lateral(c4) + F.interpolate(self.top(c8), size=c4.shape[-2:], mode="nearest"))


class SegmentHead(nn.Module):
    """Per-pixel logits for background + num_classes, upsampled to the input size."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.fuse = FuseStride4(channels, channels[1])
        self.out = nn.Conv2d(channels[1], num_classes + 1, 1)

    def forward(self, features, image_size):
        return F.interpolate(self.out(self.fuse(features)), size=image_size, mode="bilinear", align_corners=False)


class DetectHead(nn.Module):
    """CenterNet-style single-stage detector on stride-4 features: a class heat map of object
    centres and, at each location, the box width and height (in stride units, log space)."""

    stride = 4

    def __init__(self, channels, num_classes):
        super().__init__()
        self.fuse = FuseStride4(channels, channels[1])
        self.heatmap = nn.Conv2d(channels[1], num_classes, 1)
        self.size = nn.Conv2d(channels[1], 2, 1)

    def forward(self, features, image_size):
        x = self.fuse(features)
        return {"heatmap": self.heatmap(x), "size": self.size(x)}


def init_weights(net: nn.Module) -> None:
    """He init for convolutions, and residual branches that start as the identity (the last
    normalisation's scale at zero: Goyal et al. 2017, used by He et al. 2019 with GN)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    for m in net.modules():
        if isinstance(m, (Residual, BasicBlock)):
            last = m.body[-1][1] if isinstance(m, Residual) else m.conv2[1]
            if isinstance(last, (nn.GroupNorm, nn.BatchNorm2d)):
                nn.init.zeros_(last.weight)
    # Output layers start small (CenterNet, RetinaNet), the detector's with a low centre prior so
    # that the focal loss is not swamped by background at the first steps.
    for layer in (getattr(net.head, name, None) for name in ("out", "heatmap", "size")):
        if layer is not None:
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, -2.19 if layer is getattr(net.head, "heatmap", None) else 0.0)


HEADS = {"classify": ClassifyHead, "segment": SegmentHead, "detect": DetectHead, "pose": PoseHead}


class Net(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.head = HEADS[cfg.task](self.backbone.channels, cfg.num_classes)
        init_weights(self)

    def forward(self, images):
        """images: float [B,3,H,W] in [0, 1]; centred here so that every caller feeds the same range."""
        return self.head(self.backbone((images - 0.5) / 0.25), images.shape[-2:])

    def frozen_stages(self, count: int) -> None:
        """Freeze the first `count` backbone stages (the stem counts as one): 0 fine-tunes everything, 4 leaves
        only the head to train (a linear probe, for classification). Newell & Deng's freeze-k."""
        for module in [self.backbone.stem, *self.backbone.stages][:count]:
            module.requires_grad_(False)

    def embed(self, images):
        """The backbone's last stage, average-pooled: the representation SimCLR trains and a probe reads."""
        return self.backbone((images - 0.5) / 0.25)[-1].mean(dim=(2, 3))


def build_model(**kwargs) -> Net:
    """build_model(arch=..., width=..., norm=..., task=..., num_classes=...): unknown keys are an error."""
    return Net(ModelConfig(**kwargs))
