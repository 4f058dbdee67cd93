"""Batched, on-device data augmentation: the augmentation ladder of Zoph et al. 2020.

Zoph et al. (2020), "Rethinking Pre-training and Self-training", compare pre-training
and self-training under four augmentation policies of increasing strength. This module
adds a "no augmentation" rung and implements the ladder twice: with Kornia (torch ops on
the tensor's device) and with NVIDIA DALI (a pipeline fed a whole uint8 batch):

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
i.e. per batch; the papers (and DALI) draw per image. By default, :class:`KorniaAugment`
draws the sub-policy per image (RandAugment: each of the N ops, with replacement). It
then partitions the batch by that draw and calls Kornia's own
``AutoAugment``/``RandAugment``, holding a one-entry policy, once per non-empty group
(``per_image_policy=False`` restores Kornia's per-batch draw, which is faster).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

LEVELS = ("S0", "S1", "S2", "S3", "S4")
BACKENDS = ("kornia", "dali")

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


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`; raise ``ValueError`` otherwise."""
    return _check_choice(backend, "aug_backend", "augmentation backend", BACKENDS)


# --------------------------------------------------------------------------------------
# Kornia
# --------------------------------------------------------------------------------------


def _kornia():
    import kornia.augmentation as K  # imported lazily: DALI-only users need not pay for it

    return K


def _make_scale_jitter(scale_range: tuple[float, float]) -> nn.Module:
    """Kornia ``RandomAffine`` whose shift is coupled to the sampled scale (see module doc)."""
    K = _kornia()

    class ScaleJitter(K.RandomAffine):
        """Resize by ``s ~ U(lo, hi)`` about the centre, then a random crop (window shift).

        The shift is ``u * |s - 1| * size / 2`` per axis with ``u ~ U(-1, 1)``. Kornia's own
        ``RandomAffine`` samples translation independently of scale; this subclass only
        rescales the sampled ``translations`` (drawn with ``translate=(0.5, 0.5)``, so in
        ``[-size/2, size/2]``) by ``|s - 1|``. Everything else (warping images, masks with
        nearest resampling, boxes/keypoints through the matrix) is Kornia's.
        """

        def generate_parameters(self, batch_shape):
            params = super().generate_parameters(batch_shape)
            s = params["scale"][:, :1]
            params["translations"] = params["translations"] * (s - 1.0).abs()
            return params

    # padding_mode="zeros": the zoomed-out border is 0 (FILL_VALUE) in images and masks
    return ScaleJitter(degrees=0.0, translate=(0.5, 0.5), scale=scale_range, p=1.0, padding_mode="zeros")


def _auto_policies(kind: str, per_image: bool) -> tuple[list[nn.Module], int]:
    """Kornia's own AutoAugment/RandAugment modules and the number of rounds to run.

    ``per_image``: one module per sub-policy (AutoAugment, 1 round) or per op (RandAugment
    with a one-op policy, N rounds), to be applied to per-image groups. Otherwise a single
    module with Kornia's per-batch draw.
    """
    from kornia.augmentation.auto import AutoAugment, RandAugment
    from kornia.augmentation.auto.autoaugment.autoaugment import imagenet_policy
    from kornia.augmentation.auto.rand_augment.rand_augment import default_policy

    if kind == "autoaugment":
        if per_image:
            return [AutoAugment(policy=[sub]) for sub in imagenet_policy], 1
        return [AutoAugment(policy="imagenet")], 1
    if kind == "randaugment":
        if per_image:
            return [RandAugment(n=1, m=RANDAUGMENT_M, policy=[op]) for op in default_policy], RANDAUGMENT_N
        return [RandAugment(n=RANDAUGMENT_N, m=RANDAUGMENT_M)], 1
    raise AssertionError(kind)


class KorniaAugment(nn.Module):
    """Batched augmentation on the tensor's device.

    Input: float images [B,3,H,W] in [0,1] with H == W == ``image_size``, optional boxes
    [B,K,4] xyxy in continuous pixel coordinates (a box covering pixel columns a..b has
    x1=a, x2=b+1; padding rows are all zero, and any row with x2<=x1 or y2<=y1 counts as
    padding), optional masks [B,H,W] of integer labels (semantic or instance ids).

    Geometric ops (flip, scale jitter + crop, and the rotate/shear/translate ops of
    AutoAugment/RandAugment) are applied identically to image, boxes and masks. Kornia
    0.9's ``AugmentationSequential`` carries masks and keypoints through its auto policies,
    so nothing is restricted when boxes/masks are given. Masks are resampled with nearest
    interpolation and keep their integer dtype and values; regions shifted in from outside
    the image get label 0. Photometric ops touch only the image. Boxes are transformed as
    their four corners (through Kornia's keypoint path, the same matrices as the image).
    Each output box is the axis-aligned bbox of that quadrilateral clipped to the image.
    The clipping is exact polygon clipping, so an object cut by the border keeps a tight
    box. Under rotation/shear the result is the bbox of the rotated *box*, which can be
    looser than the rotated object itself. Boxes are re-clipped after every geometric
    stage (flip + scale jitter, each auto-policy round), because content cropped away by
    one stage does not come back with a later translation. Degenerate boxes come back as
    all zeros: clipped area < 1 px², or a box that contains no pixel centre in x or in y
    (a sliver at the border that the nearest-resampled mask does not show either). Padding
    rows (all zero, or x2<=x1 or y2<=y1) also come back as all zeros.

    ``p`` is the per-image probability of augmenting at all. Images not drawn, and every
    image when ``p == 0`` or ``level == "S0"``, come back untouched: exactly the input
    values. For ``p == 0``/S0 the input tensors themselves are returned.

    ``per_image_policy`` (default True) draws the AutoAugment sub-policy / the RandAugment
    ops per image, as in the papers and in DALI. That costs one Kornia call per non-empty
    group: up to 25 calls for AutoAugment, 2 x 15 for RandAugment. Each call costs a few ms
    of Python overhead on any device. ``False`` makes one call per batch instead (Kornia's
    native behaviour: the whole batch shares a sub-policy / op pair, with per-image
    application probabilities and magnitude signs).

    Randomness: all draws (Kornia's parameter sampling, which uses torch's global RNG, and
    this class's own per-image gate / sub-policy draws) run inside
    ``torch.random.fork_rng`` with the CPU RNG state swapped for this instance's private
    state. That state is seeded from ``seed`` and saved back after each call. The caller's
    global RNG state is restored unchanged after every call, whatever the level. On CUDA
    inputs, the device's RNG is forked too and reseeded from the private stream. Two fresh
    instances with the same seed therefore give identical output sequences for identical
    inputs. ``seed=None`` takes one draw from the global torch RNG at construction, the
    same single draw for every level, so ``torch.manual_seed`` upstream still makes runs
    reproducible. Parameters are sampled on the CPU; results on CUDA are deterministic
    per device but not bit-equal to CPU results.
    """

    def __init__(self, level: str, image_size: int, p: float = 1.0, seed: int | None = None,
                 *, per_image_policy: bool = True):
        super().__init__()
        self.level = check_level(level)
        if int(image_size) <= 0:
            raise ValueError(f"image_size must be a positive int; got {image_size!r}")
        self.image_size = int(image_size)
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p (probability of augmenting an image) must be in [0, 1]; got {p!r}")
        self.p = float(p)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = int(seed)
        gen = torch.Generator().manual_seed(self.seed)
        self._rng_state = gen.get_state()

        self.geometry: nn.Module | None = None
        self.policies = nn.ModuleList()
        self.policy_rounds = 0
        if self.level != "S0":
            K = _kornia()
            self.geometry = K.AugmentationSequential(
                K.RandomHorizontalFlip(p=0.5), _make_scale_jitter(SCALE_RANGES[self.level])
            )
            kind = AUTO_POLICY[self.level]
            if kind is not None:
                mods, self.policy_rounds = _auto_policies(kind, per_image_policy)
                self.policies.extend(K.AugmentationSequential(mod) for mod in mods)

    def extra_repr(self) -> str:
        return (f"level={self.level!r}, image_size={self.image_size}, p={self.p}, seed={self.seed}, "
                f"policy_modules={len(self.policies)}, policy_rounds={self.policy_rounds}")

    # -- randomness ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _private_rng(self, device: torch.device) -> Iterator[None]:
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.set_rng_state(self._rng_state)
            if cuda:
                cuda_seed = int(torch.randint(0, 2**62, (1,)).item())
                with torch.cuda.device(cuda[0]):
                    torch.cuda.manual_seed(cuda_seed)
            yield
            self._rng_state = torch.get_rng_state()

    # -- forward ------------------------------------------------------------------------

    def _check_inputs(self, images, boxes, masks) -> None:
        if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3):
            raise ValueError(f"images must be a [B,3,H,W] tensor; got {getattr(images, 'shape', type(images))}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [0, 1]; got {images.dtype}")
        b, _, h, w = images.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size}x{self.image_size} (image_size); got {h}x{w}")
        if boxes is not None and (boxes.ndim != 3 or boxes.shape[0] != b or boxes.shape[2] != 4):
            raise ValueError(f"boxes must be [B,K,4] with B={b}; got {tuple(boxes.shape)}")
        if masks is not None and tuple(masks.shape) != (b, h, w):
            raise ValueError(f"masks must be [B,H,W]={(b, h, w)}; got {tuple(masks.shape)}")

    def forward(self, images: torch.Tensor, boxes: torch.Tensor | None = None,
                masks: torch.Tensor | None = None):
        self._check_inputs(images, boxes, masks)
        with_targets = boxes is not None or masks is not None
        if self.level == "S0" or self.p == 0.0 or images.shape[0] == 0:
            return (images, boxes, masks) if with_targets else images

        n = images.shape[0]
        bx = None
        if boxes is not None:
            box_dtype = boxes.dtype if boxes.is_floating_point() else images.dtype
            bx = boxes.to(images.dtype)
            valid = (bx[..., 2] > bx[..., 0]) & (bx[..., 3] > bx[..., 1])
            bx = torch.where(valid[..., None], bx, torch.zeros_like(bx))

        with self._private_rng(images.device):
            if self.p < 1.0:
                sel = torch.nonzero(torch.rand(n) < self.p).flatten()  # CPU: no device sync
                if sel.numel() == 0:
                    return (images, boxes, masks) if with_targets else images
                sel_dev = sel.to(images.device)
            else:
                sel = sel_dev = None

            def take(t):
                return t if (t is None or sel is None) else t.index_select(0, sel_dev)

            x, m, b = self._augment(take(images), take(masks), take(bx))

        x = x.clamp(0.0, 1.0)
        if sel is not None:
            x = images.clone().index_copy_(0, sel_dev, x)
            if m is not None:
                m = masks.clone().index_copy_(0, sel_dev, m)
            if b is not None:  # images not drawn keep their boxes as given
                b = boxes.to(b.dtype).index_copy(0, sel_dev, b)
        if not with_targets:
            return x
        return x, (b.to(box_dtype) if b is not None else None), m

    def _augment(self, x, m, b):
        """Flip + scale jitter on the whole batch, then the auto policy in per-image groups.

        Boxes are re-clipped to the image after every stage (geometry, each policy round):
        content cropped away by one stage cannot come back with a later translation.
        """
        keys = ["input"] + (["mask"] if m is not None else []) + (["keypoints"] if b is not None else [])
        x, m, b = _run_seq(self.geometry, keys, x, m, b)
        for _ in range(self.policy_rounds):
            if len(self.policies) == 1:  # per_image_policy=False: Kornia's per-batch draw
                x, m, b = _run_seq(self.policies[0], keys, x, m, b)
                continue
            n = x.shape[0]
            choice = torch.randint(0, len(self.policies), (n,))  # CPU, per image
            order = torch.argsort(choice, stable=True)
            counts = torch.bincount(choice, minlength=len(self.policies)).tolist()
            order_dev = order.to(x.device)
            parts = [t.index_select(0, order_dev) if t is not None else None for t in (x, m, b)]
            outs: list[list[torch.Tensor]] = [[], [], []]
            start = 0
            for k, c in enumerate(counts):
                if c == 0:
                    continue
                chunk = [t[start:start + c] if t is not None else None for t in parts]
                res = _run_seq(self.policies[k], keys, *chunk)
                for j, r in enumerate(res):
                    if r is not None:
                        outs[j].append(r)
                start += c
            inv = torch.empty_like(order)
            inv[order] = torch.arange(n)
            inv_dev = inv.to(x.device)
            x, m, b = [torch.cat(o).index_select(0, inv_dev) if o else None for o in outs]
        return x, m, b


def _run_seq(seq: nn.Module, keys: list[str], x, m, b):
    """One Kornia ``AugmentationSequential`` call on image, optional mask and optional boxes.

    Boxes travel as their four corners (Kornia keypoints); the result is re-boxed and
    clipped by :func:`_quads_to_boxes`.
    """
    args = [x]
    if m is not None:
        args.append(m.unsqueeze(1))
    if b is not None:
        args.append(_box_corners(b))
    out = seq(*args, data_keys=keys)
    if not isinstance(out, (list, tuple)):
        out = [out]
    out = list(out)
    x_out = out.pop(0)
    m_out = out.pop(0).reshape(m.shape) if m is not None else None
    b_out = None
    if b is not None:
        alive = (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])
        b_out = _quads_to_boxes(out.pop(0), alive, x.shape[-2], x.shape[-1])
    return x_out, m_out, b_out


def _box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """[B,K,4] continuous xyxy -> [B,4K,2] corner points in pixel-index coordinates.

    Kornia's pixel coordinates put pixel ``i`` at ``i`` (a flip maps ``x -> W-1-x``), so
    the continuous extent ``[x1, x2)`` is ``[x1 - 0.5, x2 - 0.5]`` there.
    """
    x1, y1, x2, y2 = (boxes[..., i] - 0.5 for i in range(4))
    pts = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                       torch.stack([x2, y2], -1), torch.stack([x1, y2], -1)], dim=2)  # [B,K,4,2]
    return pts.reshape(boxes.shape[0], -1, 2)


def _quads_to_boxes(kp: torch.Tensor, alive: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B,4K,2] transformed corners -> [B,K,4] boxes: bbox of (quadrilateral ∩ image).

    Zeroed: rows not ``alive`` (padding / already dropped) and degenerate boxes: clipped
    area < 1 px², or a box that contains no pixel centre in x or in y. Such a box has
    no pixel in the nearest-resampled mask, e.g. a sliver of an object cut by the border.
    """
    b = kp.shape[0]
    quads = kp.reshape(b, -1, 4, 2) + 0.5  # back to continuous coordinates
    out = _clipped_quad_bbox(quads, float(w), float(h))
    x1, y1, x2, y2 = out.unbind(-1)
    # pixel i has its centre at i + 0.5: some centre lies in [x1, x2] iff ceil(x1-.5) <= floor(x2-.5)
    has_x = torch.ceil(x1 - 0.5) <= torch.floor(x2 - 0.5)
    has_y = torch.ceil(y1 - 0.5) <= torch.floor(y2 - 0.5)
    keep = alive & ((x2 - x1) * (y2 - y1) >= 1.0) & has_x & has_y
    return torch.where(keep[..., None], out, torch.zeros_like(out))


def _clipped_quad_bbox(q: torch.Tensor, w: float, h: float) -> torch.Tensor:
    """Axis-aligned bbox of ``convex quad [...,4,2] ∩ [0,w]x[0,h]`` (zeros if empty).

    The intersection polygon's vertices are among: quad vertices inside the image, image
    corners inside the quad, and quad-edge / image-border crossings. Taking the bbox of
    those points (rather than clipping the quad's bbox) keeps a rotated/sheared object
    that is cut by the border tight around its visible part. For axis-aligned quads it
    equals plain clipping.
    """
    eps = 1e-4
    x, y = q[..., 0], q[..., 1]
    pts = [q]
    oks = [(x >= -eps) & (x <= w + eps) & (y >= -eps) & (y <= h + eps)]
    # image corners inside the (convex, either orientation) quad
    corners = q.new_tensor([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    edges = q.roll(-1, dims=-2) - q  # [...,4,2]
    d = corners[:, None, :] - q[..., None, :, :]  # [...,4 corners,4 vertices,2]
    cross = edges[..., None, :, 0] * d[..., 1] - edges[..., None, :, 1] * d[..., 0]
    area2 = (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)
    inside = ((cross >= -eps).all(-1) | (cross <= eps).all(-1)) & (area2.abs() > eps)[..., None]
    pts.append(corners.expand(q.shape[:-2] + (4, 2)))
    oks.append(inside)
    # quad edges crossing the image border lines
    p, r = q, q.roll(-1, dims=-2)
    for axis, limit_other, values in ((0, h, (0.0, w)), (1, w, (0.0, h))):
        other = 1 - axis
        den = r[..., axis] - p[..., axis]
        nonflat = den.abs() > 1e-9
        den = torch.where(nonflat, den, torch.ones_like(den))
        for v in values:
            t = (v - p[..., axis]) / den
            o = p[..., other] + t * (r[..., other] - p[..., other])
            ok = nonflat & (t >= 0) & (t <= 1) & (o >= -eps) & (o <= limit_other + eps)
            pt = torch.stack([torch.full_like(o, v), o], -1) if axis == 0 else \
                torch.stack([o, torch.full_like(o, v)], -1)
            pts.append(pt)
            oks.append(ok)
    pts_all = torch.cat(pts, dim=-2)  # [...,N,2]
    ok_all = torch.cat(oks, dim=-1)  # [...,N]
    inf = torch.full_like(pts_all[..., 0], float("inf"))
    px, py = pts_all[..., 0], pts_all[..., 1]
    x1 = torch.where(ok_all, px, inf).amin(-1).clamp(0, w)
    y1 = torch.where(ok_all, py, inf).amin(-1).clamp(0, h)
    x2 = torch.where(ok_all, px, -inf).amax(-1).clamp(0, w)
    y2 = torch.where(ok_all, py, -inf).amax(-1).clamp(0, h)
    box = torch.stack([x1, y1, x2, y2], dim=-1)
    return torch.where(ok_all.any(-1)[..., None], box, torch.zeros_like(box))


# --------------------------------------------------------------------------------------
# DALI
# --------------------------------------------------------------------------------------


def dali_augment_graph(images, level: str, image_size: int):
    """The DALI augmentation graph: uint8 HWC ``DataNode`` -> float CHW ``DataNode`` in [0,1].

    A plain function of a DataNode (no ``@pipeline_def``) so a file reader + decoder can
    feed it later. The images must already be ``image_size x image_size``: the scale
    jitter resizes both sides to ``s * image_size``, so a reader of other sizes should
    resize/crop to that square first. ``images`` may live on the CPU or GPU; random parameters are drawn
    on the CPU (DALI argument inputs). S2-S4 use DALI's auto_aug, which needs the
    enclosing pipeline to be defined with ``enable_conditionals=True``.
    Order (as in :class:`KorniaAugment`): flip, scale jitter + crop, auto policy.
    """
    from nvidia.dali import fn, types

    check_level(level)
    size = int(image_size)
    if level != "S0":
        flip = fn.random.coin_flip(probability=0.5)
        images = fn.flip(images, horizontal=flip)
        lo, hi = SCALE_RANGES[level]
        s = fn.random.uniform(range=[lo, hi])
        images = fn.resize(images, resize_x=s * size, resize_y=s * size)
        # window position uniform over the valid range; "pad" zero-fills a zoomed-out image
        images = fn.crop(images, crop=(size, size),
                         crop_pos_x=fn.random.uniform(range=[0.0, 1.0]),
                         crop_pos_y=fn.random.uniform(range=[0.0, 1.0]),
                         out_of_bounds_policy="pad", fill_values=FILL_VALUE)
        kind = AUTO_POLICY[level]
        if kind is not None:
            from nvidia.dali.auto_aug import auto_augment, rand_augment

            # (DALI 2.4's auto_aug still calls fn.experimental.equalize/filter and emits a
            # DeprecationWarning per graph build, under its own forced "default" filter.)
            if kind == "autoaugment":
                images = auto_augment.auto_augment(images, policy_name="image_net",
                                                   shape=(size, size), fill_value=FILL_VALUE)
            else:
                images = rand_augment.rand_augment(images, n=RANDAUGMENT_N, m=RANDAUGMENT_M,
                                                   shape=(size, size), fill_value=FILL_VALUE)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                    mean=[0.0], std=[255.0])


def _dali_device(device: str) -> tuple[str, int | None]:
    dev = torch.device(device)
    if dev.type == "cpu":
        return "cpu", None
    if dev.type == "cuda":
        return "gpu", dev.index if dev.index is not None else torch.cuda.current_device()
    raise ValueError(f"device must be 'cpu' or 'cuda[:N]'; got {device!r}")


def _dali_to_torch(out, device: torch.device, zero_copy: bool) -> torch.Tensor:
    """Dense DALI TensorList -> torch tensor on ``device``, as DALI's own PyTorch iterator does.

    With DALI's dynamic executor (the default in DALI 2.x) the output is handed over
    through DLPack without a copy. DLPack keeps the DALI buffer alive for as long as the
    torch tensor lives, and it orders the hand-over with torch's current stream. Otherwise
    the whole batch is copied with one ``feed_ndarray`` call on torch's current stream.
    """
    from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

    tensor = out.as_tensor()
    if zero_copy:
        if device.type == "cuda":
            with torch.cuda.device(device):
                return torch.from_dlpack(tensor)
        return torch.from_dlpack(tensor)
    result = torch.empty(tensor.shape(), dtype=to_torch_type[tensor.dtype], device=device)
    stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
    feed_ndarray(tensor, result, cuda_stream=stream)
    return result


class DaliAugment:
    """The augmentation ladder (S0-S4) as a DALI pipeline fed a whole uint8 NHWC batch.

    ``device="cpu"``: CPU operators, ``device_id=None``. ``device="cuda"`` (or
    ``"cuda:N"``): GPU operators on ``torch.cuda.current_device()`` (or N). The input
    tensor is copied in on torch's current stream and the output is copied out on it.

    ``__call__(images_uint8_nhwc)`` returns float [B,3,H,W] in [0,1] on the input's
    device. ``B`` may be anything from 1 to ``batch_size`` (e.g. the last, smaller batch
    of an epoch). ``seed`` seeds the pipeline, so two instances with the same seed give
    the same sequence of outputs for the same sequence of inputs.
    """

    def __init__(self, level: str, image_size: int, batch_size: int, device: str = "cpu",
                 seed: int = 0, num_threads: int = 2):
        self.level = check_level(level)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        if self.image_size <= 0 or self.batch_size <= 0:
            raise ValueError(f"image_size and batch_size must be positive; got {image_size}, {batch_size}")
        self.dali_device, self.device_id = _dali_device(device)
        self.torch_device = torch.device("cpu") if self.device_id is None \
            else torch.device("cuda", self.device_id)
        self.seed = int(seed)
        self._pipe = _external_source_pipeline(
            level=self.level, image_size=self.image_size, dali_device=self.dali_device,
            batch_size=self.batch_size, num_threads=int(num_threads), device_id=self.device_id,
            seed=self.seed, prefetch_queue_depth=1,
        )
        self._pipe.build()

    def __repr__(self) -> str:
        return (f"DaliAugment(level={self.level!r}, image_size={self.image_size}, "
                f"batch_size={self.batch_size}, device={self.dali_device!r}, seed={self.seed})")

    def __call__(self, images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = images_uint8_nhwc
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.ndim == 4 and x.shape[3] == 3):
            raise ValueError(f"expected a uint8 [B,H,W,3] tensor; got "
                             f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        b, h, w, _ = x.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size}x{self.image_size} (image_size); got {h}x{w}")
        if b > self.batch_size:
            raise ValueError(f"batch of {b} images exceeds batch_size={self.batch_size}")
        if b == 0:
            return torch.empty((0, 3, h, w), dtype=torch.float32, device=x.device)
        x = x.to(self.torch_device).contiguous()
        data = x.numpy() if x.device.type == "cpu" else x
        self._pipe.feed_input("images", data, layout="HWC")
        (out,) = self._pipe.run()
        y = _dali_to_torch(out, self.torch_device, zero_copy=bool(self._pipe.exec_dynamic))
        return y.to(images_uint8_nhwc.device)


def _external_source_pipeline(level: str, image_size: int, dali_device: str, **pipe_kwargs):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(enable_conditionals=True)
    def pipe():
        images = fn.external_source(name="images", device=dali_device, layout="HWC",
                                    dtype=types.UINT8, batch=True)
        return dali_augment_graph(images, level, image_size)

    return pipe(**pipe_kwargs)


# --------------------------------------------------------------------------------------
# Deterministic flip + crop (for cross-backend agreement tests)
# --------------------------------------------------------------------------------------


def _check_window(h: int, w: int, top: int, left: int, size: int) -> None:
    if size <= 0 or top < 0 or left < 0 or top + size > h or left + size > w:
        raise ValueError(f"crop window top={top}, left={left}, size={size} does not fit in {h}x{w}")


def flip_crop_kornia(images: torch.Tensor, flip: bool, top: int, left: int, size: int) -> torch.Tensor:
    """Horizontal flip (if ``flip``) *then* crop of ``size x size`` at (top, left) of the flipped image.

    ``images``: float [B,3,H,W] in [0,1] (uint8 is converted by /255). Returns float [B,3,size,size].
    """
    from kornia.geometry.transform import hflip

    x = images if images.is_floating_point() else images.float() / 255.0
    _check_window(x.shape[-2], x.shape[-1], top, left, size)
    if flip:
        x = hflip(x)
    return x[..., top:top + size, left:left + size].contiguous()


def flip_crop_dali(images_uint8_nhwc: torch.Tensor, flip: bool, top: int, left: int, size: int) -> torch.Tensor:
    """DALI version of :func:`flip_crop_kornia`: uint8 [B,H,W,3] -> float [B,3,size,size] in [0,1].

    Builds a throw-away CPU (or, for CUDA input, GPU) pipeline; meant for tests.
    """
    from nvidia.dali import fn, pipeline_def, types

    x = images_uint8_nhwc
    b, h, w, _ = x.shape
    _check_window(h, w, top, left, size)
    on_gpu = x.device.type == "cuda"
    dev = "gpu" if on_gpu else "cpu"

    @pipeline_def
    def pipe():
        imgs = fn.external_source(name="images", device=dev, layout="HWC", dtype=types.UINT8, batch=True)
        if flip:
            imgs = fn.flip(imgs, horizontal=1)
        imgs = fn.slice(imgs, start=[top, left], shape=[size, size], axis_names="HW")
        return fn.crop_mirror_normalize(imgs, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[0.0], std=[255.0])

    device_id = None
    if on_gpu:
        device_id = x.device.index if x.device.index is not None else torch.cuda.current_device()
    p = pipe(batch_size=b, num_threads=1, device_id=device_id,
             seed=0, prefetch_queue_depth=1)
    p.build()
    x = x.contiguous()
    p.feed_input("images", x if on_gpu else x.numpy(), layout="HWC")
    (out,) = p.run()
    return _dali_to_torch(out, x.device, zero_copy=False)


# --------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------


class _Uint8ToKornia(nn.Module):
    """uint8 NHWC batch -> float NCHW in [0,1] -> :class:`KorniaAugment`."""

    def __init__(self, aug: KorniaAugment):
        super().__init__()
        self.aug = aug

    def forward(self, images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = images_uint8_nhwc
        if not (x.dtype == torch.uint8 and x.ndim == 4 and x.shape[3] == 3):
            raise ValueError(f"expected a uint8 [B,H,W,3] tensor; got {x.dtype} {tuple(x.shape)}")
        return self.aug(x.permute(0, 3, 1, 2).float().div_(255.0))


def make_augment(backend: str, level: str, image_size: int, batch_size: int, device: str,
                 seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Classification augmentation: uint8 NHWC batch on ``device`` -> float [B,3,H,W] in [0,1].

    ``kornia``: convert, then :class:`KorniaAugment` (runs on the tensor's device;
    ``batch_size`` unused). ``dali``: :class:`DaliAugment` on ``device``.
    """
    check_backend(backend)
    check_level(level)
    if backend == "kornia":
        return _Uint8ToKornia(KorniaAugment(level, image_size, p=1.0, seed=seed))
    return DaliAugment(level, image_size, batch_size, device=device, seed=seed)
