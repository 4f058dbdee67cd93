"""The ladder with Kornia: torch ops on the tensor's device, boxes and masks moved with the image.

"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .boxes import box_corners, quads_to_boxes
from .policy import GroupedPolicy
from .ladder import ENGINES, SCALE_RANGES, AUTO_POLICY, RANDAUGMENT_N, RANDAUGMENT_M, _check_choice, check_level


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

    ``engine``: ``"grouped"`` or ``"modules"`` (see the module doc). With the modules
    engine, ``per_image_policy`` (default True) draws the AutoAugment sub-policy / the
    RandAugment ops per image, at one Kornia container call per non-empty group (up to 25
    calls for AutoAugment, 2 x 15 for RandAugment, each a few ms of Python overhead).
    ``False`` makes one call per batch instead (Kornia's native behaviour: the whole batch
    shares a sub-policy / op pair, with per-image application probabilities and magnitude
    signs).

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
                 *, engine: str = "grouped", per_image_policy: bool = True):
        super().__init__()
        self.engine = _check_choice(engine, "engine", "Kornia augmentation engine", ENGINES)
        if not per_image_policy and engine != "modules":
            raise ValueError("per_image_policy=False (Kornia's per-batch draw) needs engine='modules'")
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
        self.grouped: GroupedPolicy | None = None
        self.policies = nn.ModuleList()
        self.policy_rounds = 0
        if self.level != "S0" and self.engine == "grouped":
            self.grouped = GroupedPolicy(_make_scale_jitter(SCALE_RANGES[self.level]), AUTO_POLICY[self.level],
                                         RANDAUGMENT_N, RANDAUGMENT_M)
        elif self.level != "S0":
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
                f"engine={self.engine!r}, policy_modules={len(self.policies)}, policy_rounds={self.policy_rounds}")

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
        if self.grouped is not None:
            return self.grouped(x, m, b)
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
    clipped by :func:`rethink.core.augment.boxes.quads_to_boxes`.
    """
    args = [x]
    if m is not None:
        args.append(m.unsqueeze(1))
    if b is not None:
        args.append(box_corners(b))
    out = seq(*args, data_keys=keys)
    if not isinstance(out, (list, tuple)):
        out = [out]
    out = list(out)
    x_out = out.pop(0)
    m_out = out.pop(0).reshape(m.shape) if m is not None else None
    b_out = None
    if b is not None:
        alive = (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])
        b_out = quads_to_boxes(out.pop(0), alive, x.shape[-2], x.shape[-1])
    return x_out, m_out, b_out
