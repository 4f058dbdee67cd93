"""The shapes of the procedural world (rethink.core.data.world): one inside-test per class on object-local
coordinates (u, v) in about [-1, 1] (v pointing up), with its rotational symmetry, and the split of
the classes into the upstream ("ImageNet") and downstream sets."""

from __future__ import annotations

import math
from typing import Callable

import torch

Tensor = torch.Tensor
TAU = 2.0 * math.pi


def _polar(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    return torch.hypot(u, v), torch.atan2(v, u)


def _star(u: Tensor, v: Tensor, k: int, inner: float, offset: float = math.pi / 2) -> Tensor:
    """k-pointed star with outer radius 1 and inner radius `inner`; a regular k-gon when
    inner == cos(pi/k). One vertex points along `offset`."""
    r, phi = _polar(u, v)
    sector = TAU / k
    # Fold by the star's rotational and mirror symmetry into the wedge [0, pi/k]; there
    # the boundary is the single edge from O=(1,0) to I=inner*(cos pi/k, sin pi/k).
    a = torch.remainder(phi - offset, sector)
    a = torch.minimum(a, sector - a)
    x, y = r * torch.cos(a), r * torch.sin(a)
    ix, iy = inner * math.cos(math.pi / k), inner * math.sin(math.pi / k)
    return (ix - 1.0) * y - iy * (x - 1.0) >= 0  # origin side of the line O->I


def _poly(k: int, offset: float = math.pi / 2) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda u, v: _star(u, v, k, math.cos(math.pi / k), offset)


def _heart(u: Tensor, v: Tensor) -> Tensor:
    x, y = 1.2 * u, 1.2 * v + 0.1
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0


def _box(u: Tensor, v: Tensor, x0: float, x1: float, y0: float, y1: float) -> Tensor:
    return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)


# name -> (inside-test, rotational symmetry order: 0 = continuous, 1 = none, k = k-fold).
# The first half is the upstream ("ImageNet") class set, the second half downstream;
# each half mixes polygons, stars, curved and letter-like shapes so neither is easier.
SHAPE_DEFS: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], int]] = {
    # upstream
    "circle": (lambda u, v: u * u + v * v <= 1.0, 0),
    "triangle": (_poly(3), 3),
    "square": (_poly(4, math.pi / 4), 4),
    "pentagon": (_poly(5), 5),
    "star5": (lambda u, v: _star(u, v, 5, 0.45), 5),
    "cross": (lambda u, v: _box(u, v, -0.3, 0.3, -0.9, 0.9) | _box(u, v, -0.9, 0.9, -0.3, 0.3), 4),
    "ring": (lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55 ** 2), 0),
    "heart": (_heart, 1),
    "arrow": (lambda u, v: _box(u, v, -0.22, 0.22, -0.95, 0.1)
              | ((v >= 0.05) & (u.abs() <= (0.95 - v) * 0.85)), 1),
    "L": (lambda u, v: _box(u, v, -0.7, -0.2, -0.9, 0.9) | _box(u, v, -0.7, 0.7, -0.9, -0.4), 1),
    # downstream
    "ellipse": (lambda u, v: u * u + (v / 0.55) ** 2 <= 1.0, 2),
    "diamond": (lambda u, v: u.abs() / 0.6 + v.abs() <= 1.0, 2),
    "hexagon": (_poly(6), 6),
    "star4": (lambda u, v: _star(u, v, 4, 0.4), 4),
    "star6": (lambda u, v: _star(u, v, 6, 0.55), 6),
    "T": (lambda u, v: _box(u, v, -0.85, 0.85, 0.4, 0.9) | _box(u, v, -0.25, 0.25, -0.9, 0.9), 1),
    "crescent": (lambda u, v: (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + v * v > 0.8 ** 2), 1),
    "semicircle": (lambda u, v: (u * u + (v + 0.4) ** 2 <= 1.0) & (v >= -0.4), 1),
    "trapezoid": (lambda u, v: (v.abs() <= 0.6) & (u.abs() <= 0.95 - 0.375 * (v + 0.6)), 1),
    "bowtie": (lambda u, v: (u.abs() <= 0.9) & (v.abs() <= 0.1 + 0.9 * u.abs()), 2),
}

SHAPES: tuple[str, ...] = tuple(SHAPE_DEFS)
UPSTREAM_CLASSES: tuple[str, ...] = SHAPES[: len(SHAPES) // 2]
DOWNSTREAM_CLASSES: tuple[str, ...] = SHAPES[len(SHAPES) // 2:]
SYMMETRY: dict[str, int] = {name: sym for name, (_, sym) in SHAPE_DEFS.items()}
