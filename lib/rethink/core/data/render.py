"""Rendering the procedural world (rethink.core.data.world): a WorldSpec's knobs turned into batches of objects,
textures, lighting and clutter, drawn with torch on the CPU from a local ``torch.Generator``. Each shape
(rethink.core.data.shapes) is an inside-test on object-local coordinates (u, v) in about [-1, 1] (v pointing up),
evaluated on a 2x supersampled grid for all objects of that shape at once, then average-pooled, which is the
anti-aliasing."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .shapes import SHAPE_DEFS, SHAPES, TAU

Tensor = torch.Tensor


# ----------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class WorldSpec:
    image_size: int = 32  # pixels per side, in [16, 256]
    texture: float = 0.5  # probability and variety of textured (vs solid) objects
    color: float = 0.5  # spread of object and background hue/saturation/value
    viewpoint: float = 0.5  # spread of rotation, scale, tilt and position
    lighting: float = 0.5  # brightness, directional gradient, shadow, contrast
    clutter: float = 0.5  # background texture, distractor fragments, pixel noise
    noise_std: float = 0.08  # pixel noise std at clutter=1, in [0,1] intensity units
    scale_range: tuple[float, float] = (0.3, 0.9)  # object diameter / image side at viewpoint=1 (classification)
    scene_scale_range: tuple[float, float] = (0.15, 0.5)  # same, for scenes
    max_tilt: float = 0.6  # vertical squash of a fully tilted object (0.6 -> 40% height)
    max_fragments: int = 4  # distractor fragments per image at clutter=1 (each kept with p=0.75)
    min_visible_px: int = 12  # scene objects with fewer visible pixels are dropped

    def __post_init__(self) -> None:
        for name in ("texture", "color", "viewpoint", "lighting", "clutter"):
            val = getattr(self, name)
            if not (isinstance(val, (int, float)) and 0.0 <= val <= 1.0):
                raise ValueError(f"WorldSpec.{name} must be in [0, 1], got {val!r}")
        if not (isinstance(self.image_size, int) and 16 <= self.image_size <= 256):
            raise ValueError(f"WorldSpec.image_size must be an int in [16, 256], got {self.image_size!r}")
        for name in ("scale_range", "scene_scale_range"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.5:
                raise ValueError(f"WorldSpec.{name} must satisfy 0 < lo <= hi <= 1.5, got {(lo, hi)!r}")
        if not 0.0 <= self.max_tilt < 1.0:
            raise ValueError(f"WorldSpec.max_tilt must be in [0, 1), got {self.max_tilt!r}")
        if self.noise_std < 0 or self.max_fragments < 0 or self.min_visible_px < 0:
            raise ValueError("WorldSpec.noise_std, max_fragments and min_visible_px must be >= 0")


# -------------------------------------------------------------------------- helpers
def _rand(g: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _hsv2rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """[...] hsv in [0,1] -> [..., 3] rgb."""
    n = torch.tensor([5.0, 3.0, 1.0])
    k = torch.remainder(n + 6.0 * h.unsqueeze(-1), 6.0)
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))


def _smooth_noise(g: torch.Generator, b: int, c: int, res: int, size: int) -> Tensor:
    """Band-limited noise in [0,1]: a coarse random grid upsampled bicubically."""
    coarse = torch.rand((b, c, res, res), generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def _grid(size: int) -> Tensor:
    return (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in [0,1]


def check_classes(classes: Sequence[str]) -> list[str]:
    classes = list(classes)
    unknown = [c for c in classes if c not in SHAPE_DEFS]
    if not classes or unknown:
        raise ValueError(f"classes must be a non-empty subset of SHAPES; unknown: {unknown}")
    if len(set(classes)) != len(classes):
        raise ValueError("classes must not repeat")
    if len(classes) > 254:
        raise ValueError("at most 254 classes fit the uint8 semantic map")
    return classes


# ------------------------------------------------------------------------ rendering
def _sample_objects(g: torch.Generator, b: int, m: int, spec: WorldSpec, scene: bool) -> dict[str, Tensor]:
    """Per-object parameters for b images x m slots."""
    vp, col, tex = spec.viewpoint, spec.color, spec.texture
    lo, hi = spec.scene_scale_range if scene else spec.scale_range
    mid = 0.5 * (lo + hi)
    size = _rand(g, b, m, lo=mid + vp * (lo - mid), hi=mid + vp * (hi - mid))
    if scene:
        # A scene's layout is not a viewpoint property: objects must spread out even at
        # viewpoint=0, and may be cut by the border a little, as in real photos.
        cx, cy = (_rand(g, b, m, lo=0.0, hi=1.0) * (1.0 - 0.6 * size) + 0.3 * size for _ in range(2))
    else:
        cx, cy = (0.5 + vp * _rand(g, b, m, lo=-1, hi=1) * (1.0 - size) / 2 for _ in range(2))
    o = {
        "size": size, "cx": cx, "cy": cy,
        "angle": vp * math.pi * _rand(g, b, m, lo=-1, hi=1),
        "tilt": vp * _rand(g, b, m),
    }
    # Fixed orange at color=0; the knob widens hue to the full circle and lets value and
    # saturation approach the background's, so colour alone cannot find the object.
    h = 0.05 + col * _rand(g, b, m, lo=-0.5, hi=0.5)
    s = (0.75 + col * _rand(g, b, m, lo=-0.55, hi=0.25)).clamp(0, 1)
    v = (0.85 + col * _rand(g, b, m, lo=-0.5, hi=0.15)).clamp(0, 1)
    o["rgb"] = _hsv2rgb(torch.remainder(h, 1.0), s, v)
    # Texture: kind 0 = solid; the knob raises the chance of a pattern and unlocks more
    # kinds (stripes, checker, dots, noise), finer frequencies and stronger contrast.
    n_kinds = 1 + round(3 * tex)
    textured = torch.rand((b, m), generator=g) < tex
    o["tex_kind"] = torch.where(textured, 1 + (torch.rand((b, m), generator=g) * n_kinds).long(), 0)
    o["tex_freq"] = _rand(g, b, m, lo=0.6, hi=0.6 + 1.4 * tex)  # cycles per local unit
    o["tex_angle"] = _rand(g, b, m, lo=0.0, hi=math.pi)
    o["tex_phase"] = _rand(g, b, m, lo=0.0, hi=TAU)
    other = torch.rand((b, m, 3), generator=g)
    o["rgb2"] = o["rgb"] + _rand(g, b, m, 1, lo=0.35, hi=0.9) * (other - o["rgb"])
    return o


def _local_coords(o: dict[str, Tensor], idx: Tensor, grid: Tensor, max_tilt: float) -> tuple[Tensor, Tensor]:
    """Object-local (u, v) on the grid for the objects picked by flat index `idx`."""
    half = (o["size"].flatten()[idx] / 2).view(-1, 1, 1)
    dx = (grid.view(1, 1, -1) - o["cx"].flatten()[idx].view(-1, 1, 1)) / half
    # Tilt = the object plane leaning back: image height shrinks; v points up.
    squash = (1.0 - max_tilt * o["tilt"].flatten()[idx]).view(-1, 1, 1)
    dy = -(grid.view(1, -1, 1) - o["cy"].flatten()[idx].view(-1, 1, 1)) / (half * squash)
    ang = o["angle"].flatten()[idx].view(-1, 1, 1)
    c, s = torch.cos(ang), torch.sin(ang)
    return c * dx + s * dy, -s * dx + c * dy


def _pattern(kind: int, u: Tensor, v: Tensor, freq: Tensor, angle: Tensor, phase: Tensor,
             g: torch.Generator) -> Tensor:
    """Texture mix weight in [0,1] (0 = primary colour) in object-local coordinates, so
    patterns rotate and tilt with the object like a printed surface."""
    c, s = torch.cos(angle), torch.sin(angle)
    a, b = c * u + s * v, -s * u + c * v
    w = TAU * freq
    if kind == 1:  # stripes
        return (torch.sin(w * a + phase) > 0).float()
    if kind == 2:  # checker
        return (torch.sin(w * a + phase) * torch.sin(w * b + phase) > 0).float()
    if kind == 3:  # dots on a lattice
        fa, fb = torch.frac(freq * a + 10.0) - 0.5, torch.frac(freq * b + 10.0) - 0.5
        return (fa * fa + fb * fb < 0.09).float()
    # smooth noise, sampled in local coordinates so it also moves with the object
    n, size = u.shape[0], u.shape[-1]
    noise = torch.rand((n, 1, 6, 6), generator=g)
    gx, gy = (a / 1.2).clamp(-1, 1), (b / 1.2).clamp(-1, 1)
    out = F.grid_sample(noise, torch.stack([gx, gy], -1), mode="bicubic", align_corners=False)
    return out.view(n, size, size).clamp(0, 1)


def _render_objects(g: torch.Generator, shape_ids: Tensor, o: dict[str, Tensor], spec: WorldSpec,
                    size: int) -> tuple[Tensor, Tensor]:
    """Anti-aliased coverage alpha [b,m,H,W] and premultiplied colour [b,m,3,H,W]."""
    b, m = shape_ids.shape
    ss = 2 * size
    grid = _grid(ss)
    flat = shape_ids.flatten()
    inside = torch.zeros((b * m, ss, ss))
    mix = torch.zeros((b * m, ss, ss))
    for sid in torch.unique(flat[flat >= 0]).tolist():
        idx = torch.nonzero(flat == sid).squeeze(1)
        u, v = _local_coords(o, idx, grid, spec.max_tilt)
        inside[idx] = SHAPE_DEFS[SHAPES[sid]][0](u, v).float()
        kinds = o["tex_kind"].flatten()[idx]
        for kind in torch.unique(kinds[kinds > 0]).tolist():
            sub = torch.nonzero(kinds == kind).squeeze(1)
            par = [o[k].flatten()[idx[sub]].view(-1, 1, 1) for k in ("tex_freq", "tex_angle", "tex_phase")]
            mix[idx[sub]] = _pattern(kind, u[sub], v[sub], *par, g)
    alpha = F.avg_pool2d(inside.unsqueeze(1), 2).view(b, m, size, size)
    mixa = F.avg_pool2d((inside * mix).unsqueeze(1), 2).view(b, m, 1, size, size)
    rgb, rgb2 = o["rgb"].view(b, m, 3, 1, 1), o["rgb2"].view(b, m, 3, 1, 1)
    return alpha, alpha.unsqueeze(2) * rgb + mixa * (rgb2 - rgb)


def _render_fragments(g: torch.Generator, b: int, spec: WorldSpec, obj_rgb: Tensor,
                      size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Distractor fragments (partial line strokes, arcs, wobbly blobs) that are no class.
    Drawn at 1x with analytic distance-based anti-aliasing, which is cheaper than
    supersampling. Returns alpha [b,f,H,W], rgb [b,f,3], in_front [b,f] (bool)."""
    f = spec.max_fragments
    px = _grid(size)
    x, y = px.view(1, 1, 1, -1), px.view(1, 1, -1, 1)
    active = torch.rand((b, f), generator=g) < 0.75 * spec.clutter
    kind = (torch.rand((b, f), generator=g) * 3).long()
    cx, cy = (_rand(g, b, f, 1, 1) for _ in range(2))
    ang = _rand(g, b, f, 1, 1, lo=0, hi=TAU)
    length = _rand(g, b, f, 1, 1, lo=0.2, hi=0.6)
    width = _rand(g, b, f, 1, 1, lo=1.2, hi=3.0) / size  # stroke width in image units
    dx, dy = x - cx, y - cy
    c, s = torch.cos(ang), torch.sin(ang)
    along, across = c * dx + s * dy, -s * dx + c * dy
    # line segment
    t = along.clamp(-length / 2, length / 2)
    d_line = torch.hypot(along - t, across) - width / 2
    # arc: a partial ring (at most 3/4 turn, so it never closes into a ring class)
    r = torch.hypot(dx, dy)
    span = _rand(g, b, f, 1, 1, lo=0.25, hi=0.75) * TAU
    rad = length / 2
    off = torch.remainder(torch.atan2(dy, dx) - ang, TAU)
    d_arc = torch.where(off <= span, (r - rad).abs() - width / 2, torch.full_like(r, 1e3))
    # wobbly blob: small and irregular, unlike any convex class shape
    wob = 1.0 + 0.35 * torch.sin(3 * torch.atan2(across, along) + _rand(g, b, f, 1, 1, lo=0, hi=TAU))
    d_blob = r - 0.18 * length * wob
    d = torch.where(kind.view(b, f, 1, 1) == 0, d_line, torch.where(kind.view(b, f, 1, 1) == 1, d_arc, d_blob))
    alpha = (0.5 - d * size).clamp(0, 1) * active.view(b, f, 1, 1)
    # Some fragments reuse the object's colour so colour cannot separate object from clutter.
    rgb = torch.where(torch.rand((b, f, 1), generator=g) < 0.3, obj_rgb[:, :1].expand(b, f, 3),
                      torch.rand((b, f, 3), generator=g))
    in_front = torch.rand((b, f), generator=g) < 0.3
    return alpha, rgb, in_front


def render_batch(g: torch.Generator, shape_ids: Tensor, spec: WorldSpec, scene: bool) -> tuple[Tensor, Tensor, dict]:
    """Render b images with m object slots (shape id -1 = empty slot).
    Returns images [b,3,H,W] in [0,1], visible weights [b,m,H,W], object params."""
    b, m = shape_ids.shape
    size = spec.image_size
    o = _sample_objects(g, b, m, spec, scene)
    col, clut, light = spec.color, spec.clutter, spec.lighting

    # Background: fixed grey-blue at color=0; clutter adds multi-scale colour mottling.
    bg_hsv = (torch.remainder(0.6 + col * _rand(g, b, lo=-0.5, hi=0.5), 1.0),
              (0.15 + col * _rand(g, b, lo=-0.15, hi=0.45)).clamp(0, 1),
              (0.45 + col * _rand(g, b, lo=-0.3, hi=0.4)).clamp(0, 1))
    img = _hsv2rgb(*bg_hsv).view(b, 3, 1, 1).expand(b, 3, size, size)
    mottle = 0.5 * _smooth_noise(g, b, 3, 4, size) + 0.5 * _smooth_noise(g, b, 3, 8, size) - 0.5
    img = (img * (1.0 + 0.8 * clut * mottle)).clamp(0, 1)

    frag_a, frag_rgb, frag_front = _render_fragments(g, b, spec, o["rgb"], size)
    for k in range(spec.max_fragments):
        a = (frag_a[:, k] * ~frag_front[:, k].view(b, 1, 1)).unsqueeze(1)
        img = img * (1 - a) + a * frag_rgb[:, k].view(b, 3, 1, 1)

    alpha, premult = _render_objects(g, shape_ids, o, spec, size)

    # Soft shadow: the union of objects, shifted away from the light and blurred.
    light_dir = _rand(g, b, lo=0, hi=TAU)
    shift = 0.06 * light * torch.stack([-torch.cos(light_dir), -torch.sin(light_dir)], 1)  # image units
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -2.0 * shift  # affine_grid works in [-1,1] coordinates
    union = alpha.sum(1, keepdim=True).clamp(0, 1)
    shadow = F.grid_sample(union, F.affine_grid(theta, (b, 1, size, size), align_corners=False), align_corners=False)
    shadow = F.avg_pool2d(shadow, 3, stride=1, padding=1, count_include_pad=False)
    img = img * (1.0 - light * _rand(g, b, 1, 1, 1, lo=0.2, hi=0.6) * shadow)

    for j in range(m):
        a = alpha[:, j].unsqueeze(1)
        img = img * (1 - a) + premult[:, j]
    for k in range(spec.max_fragments):
        a = (frag_a[:, k] * frag_front[:, k].view(b, 1, 1)).unsqueeze(1)
        img = img * (1 - a) + a * frag_rgb[:, k].view(b, 3, 1, 1)

    # Visible weight of each object = its alpha times the transmittance of everything
    # composited after it, so masks follow the same occlusion as the pixels.
    trans = torch.prod(1 - frag_a * frag_front.view(b, -1, 1, 1), dim=1)
    weights = torch.zeros_like(alpha)
    for j in reversed(range(m)):
        weights[:, j] = alpha[:, j] * trans
        trans = trans * (1 - alpha[:, j])

    # Lighting: global brightness, a directional gradient (lit from light_dir), contrast.
    px = _grid(size) - 0.5
    cos, sin = torch.cos(light_dir).view(b, 1, 1, 1), torch.sin(light_dir).view(b, 1, 1, 1)
    ramp = cos * px.view(1, 1, 1, -1) + sin * px.view(1, 1, -1, 1)
    brightness = torch.exp(light * _rand(g, b, 1, 1, 1, lo=-0.5, hi=0.3))
    gain = brightness * (1 + light * _rand(g, b, 1, 1, 1, lo=0, hi=0.8) * ramp)
    img = img * gain
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    img = mean + (img - mean) * (1 + light * _rand(g, b, 1, 1, 1, lo=-0.4, hi=0.3))
    img = img + clut * spec.noise_std * torch.randn(img.shape, generator=g)
    return img.clamp(0, 1), weights, o


def to_uint8(img: Tensor) -> np.ndarray:
    return (img * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def chunk_size(size: int, m: int) -> int:
    # ~4M supersampled pixels per chunk keeps tensors cache-friendly and memory small.
    return max(1, (1 << 22) // (4 * size * size * m))


