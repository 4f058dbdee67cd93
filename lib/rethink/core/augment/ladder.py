"""Batched, on-device data augmentation: the augmentation ladder of Zoph et al. 2020.

Zoph et al. (2020), "Rethinking Pre-training and Self-training", compare pre-training
and self-training under four augmentation policies of increasing strength. This module
adds a "no augmentation" rung and implements the ladder twice: with Kornia (torch ops on
the tensor's device, here) and with NVIDIA DALI (a pipeline fed a whole uint8 batch, in
:mod:`rethink.core.augment.dali`):

====  ===============================================================================
S0    none (identity)
S1    horizontal flip (p=0.5) + small scale jitter, s ~ U(0.8, 1.2), then crop
S2    S1 + AutoAugment (ImageNet policy)
S3    horizontal flip + large scale jitter, s ~ U(0.5, 2.0), then crop + AutoAugment
S4    horizontal flip + large scale jitter, s ~ U(0.5, 2.0), then crop + RandAugment
====  ===============================================================================

Scale jitter ("flip and crop" in the paper, the resize-then-crop jitter of the
detection code the paper builds on): the image is resized by a factor ``s`` and a
``size x size`` window is taken at a uniformly random position. The window stays inside
the resized image when ``s > 1`` (zoom in). When ``s < 1`` (zoom out) the resized image
lies inside the window and the rest is zero-padded. Equivalently, an isotropic scaling
by ``s`` about the centre followed by a shift ``t`` with ``|t| <= |s - 1| * size / 2``
per axis. The ranges (0.8, 1.2) and (0.5, 2.0) are the paper's S1 and S3/S4 ranges, and
both backends use them. The order is always flip, then scale jitter + crop,
then the auto policy (which sees the final canvas).

AutoAugment and RandAugment come from the libraries themselves:
``kornia.augmentation.auto.AutoAugment`` / ``RandAugment`` and
``nvidia.dali.auto_aug.auto_augment`` / ``rand_augment``. Both backends run the ImageNet
AutoAugment policy, and RandAugment with N=2 and M=29 of 30 (see ``RANDAUGMENT_M``).
Geometric auto ops fill with 0. The paper's detection runs used the *detection*
AutoAugment policy (Zoph et al. 2019, with box-only ops). Neither library ships it, so
the classification ImageNet policy stands in for it. The two libraries list and scale
their ops a little differently. Kornia's ImageNet policy is torchvision's listing; DALI
ships its own. The RandAugment translation range also differs: at full magnitude it is
0.1 of the image size in Kornia and 100/224 in DALI. So the two backends match in
distribution, not sample for sample.

Kornia draws *one* AutoAugment sub-policy (RandAugment: one op set) per forward call,
i.e. per batch; the papers (and DALI) draw per image. :class:`KorniaAugment` draws the
sub-policy per image (RandAugment: each of the N ops, with replacement), by one of two
engines:

- ``engine="grouped"`` (the default, :mod:`rethink.core.augment.policy`): Kornia's operation
  objects sample the parameters and their kernels apply them, once per op that some image
  drew, and flip + scale jitter are one warp. About 3x faster on the CPU.
- ``engine="modules"`` (the path before the speed-up of the training step, kept for ``make bench`` and as a
  reference): the batch is partitioned by the draw and Kornia's own ``AutoAugment`` /
  ``RandAugment`` containers, holding a one-entry policy, run once per non-empty group.
  ``per_image_policy=False`` (modules only) restores Kornia's per-batch draw.

The two engines draw from the same distribution, not the same samples.
"""
from __future__ import annotations

from typing import Sequence


LEVELS = ("S0", "S1", "S2", "S3", "S4")


BACKENDS = ("kornia", "dali")


ENGINES = ("grouped", "modules")  # the Kornia backend's two implementations (see below)


#: scale-jitter range (resize factor) per level; S0 has no geometry.
SCALE_RANGES = {"S1": (0.8, 1.2), "S2": (0.8, 1.2), "S3": (0.5, 2.0), "S4": (0.5, 2.0)}


#: which automatic policy each level adds after flip + scale jitter.
AUTO_POLICY = {"S0": None, "S1": None, "S2": "autoaugment", "S3": "autoaugment", "S4": "randaugment"}


RANDAUGMENT_N = 2


# Zoph et al. use RandAugment "magnitude 10" on the TF scale whose maximum is 10, i.e.
# full strength. Kornia and DALI use a 0-30 scale (Kornia: m/30 with m < 30, DALI: bin m
# of 31 bins), so the closest setting both accept is m = 29 (= 9.7 on the TF scale).
RANDAUGMENT_M = 29


FILL_VALUE = 0  # padding for the zoom-out part of scale jitter and for geometric auto ops


def _check_choice(value: object, name: str, what: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} ({what}) must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_level(level: str) -> str:
    """Return ``level`` if it is one of :data:`LEVELS`; raise ``ValueError`` otherwise."""
    return _check_choice(level, "aug", "augmentation level", LEVELS)


DALI_EXTRA = "pip install -e '.[dali]'"  # the extra that brings NVIDIA DALI (Linux), with torch's CUDA major


def dali_installed() -> bool:
    """NVIDIA DALI is optional: only ``aug_backend: dali`` needs it (real datasets decode without it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):  # no `nvidia` namespace at all, or a broken one
        return False


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS` and installed; raise ``ValueError`` otherwise."""
    _check_choice(backend, "aug_backend", "augmentation backend", BACKENDS)
    if backend == "dali" and not dali_installed():
        raise ValueError(f"aug_backend 'dali' needs NVIDIA DALI, which is not installed here: {DALI_EXTRA} "
                         f"(Linux only), or use aug_backend 'kornia'")
    return backend
