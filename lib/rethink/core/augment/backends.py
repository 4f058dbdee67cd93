"""Which backend augments a classification batch: Kornia (any device) or DALI (a pipeline on the device)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..data.tasks import to_unit_nchw
from .ladder import check_level, check_backend
from .kornia import KorniaAugment


class _Uint8ToKornia(nn.Module):
    """uint8 NHWC batch -> float NCHW in [0,1] -> :class:`KorniaAugment`."""

    def __init__(self, aug: KorniaAugment):
        super().__init__()
        self.aug = aug

    def forward(self, images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = images_uint8_nhwc
        if not (x.dtype == torch.uint8 and x.ndim == 4 and x.shape[3] == 3):
            raise ValueError(f"expected a uint8 [B,H,W,3] tensor; got {x.dtype} {tuple(x.shape)}")
        return self.aug(to_unit_nchw(x))


def make_augment(backend: str, level: str, image_size: int, batch_size: int, device: str,
                 seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Classification augmentation: uint8 NHWC batch on ``device`` -> float [B,3,H,W] in [0,1].

    ``kornia``: convert, then :class:`KorniaAugment` (runs on the tensor's device;
    ``batch_size`` unused). ``dali``: :class:`rethink.core.augment.dali.DaliAugment` on ``device``.
    """
    check_backend(backend)
    check_level(level)
    if backend == "kornia":
        return _Uint8ToKornia(KorniaAugment(level, image_size, p=1.0, seed=seed))
    from .dali import DaliAugment  # DALI is imported only when it is asked for

    return DaliAugment(level, image_size, batch_size, device=device, seed=seed)
