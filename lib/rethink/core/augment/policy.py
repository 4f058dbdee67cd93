"""The Kornia backend's fast path: per-image AutoAugment / RandAugment, each op applied once to the images
that drew it, and flip + scale jitter as one warp of the whole batch.

What comes from Kornia (nothing about the policies is restated here):

- the policies: the ImageNet AutoAugment table and RandAugment's default op list, built into Kornia's
  own operation objects (``kornia.augmentation.auto.{autoaugment,rand_augment}.ops``);
- each operation's parameters: ``OperationBase.forward_parameters`` samples the magnitude inside the
  op's range, its random sign, its mapping (shear fraction to degrees, posterize bits) and the
  application probability, once per batch for all the images that drew the op in any round;
- each operation's kernel: ``apply_transform`` of an intensity op, ``compute_transformation`` (the 3x3
  matrix) of a geometric op, and ``warp_affine`` with the op's own resampling flags;
- the scale jitter's parameters and matrix: Kornia's ``RandomAffine`` (see ``augment._make_scale_jitter``).

Written by hand here (a note, as DEVELOPERS.md asks): the per-image draw and the grouping. Kornia's
containers draw one sub-policy per batch and cost about 1.5 ms of bookkeeping per call (matrix chains,
keypoint records, parameter trees); calling them once per group of images made S4 cost as much as a
training step on the CPU. Here each round costs one kernel call per op that some image drew, plus one
warp for all of that round's geometric ops together (Kornia's auto ops share bilinear sampling, zero
padding and ``align_corners=True``). RandAugment's magnitude follows ``RandAugment.forward_parameters``
(``m / 30`` of the op's range; posterize runs it backwards; translations in pixels), restated in
:func:`randaugment_magnitude` because Kornia computes it inline. The op draw itself follows the
papers and DALI: AutoAugment draws one of the 25 sub-policies per image and runs its two ops in order,
each with its own probability; RandAugment draws each of its N ops per image, with replacement.
"""
from __future__ import annotations

import torch
from torch import nn

from .boxes import box_corners, quads_to_boxes

GEOMETRIC = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})


def policy_table(kind: str) -> list[list[nn.Module]]:
    """Kornia's policy as rows of its operation objects: AutoAugment's 25 two-op sub-policies, or
    RandAugment's 15 one-op candidates."""
    if kind == "autoaugment":
        from kornia.augmentation.auto.autoaugment import ops
        from kornia.augmentation.auto.autoaugment.autoaugment import imagenet_policy
        return [[getattr(ops, name)(prob, mag) for name, prob, mag in sub] for sub in imagenet_policy]
    if kind == "randaugment":
        from kornia.augmentation.auto.rand_augment import ops
        from kornia.augmentation.auto.rand_augment.rand_augment import default_policy
        return [[getattr(ops, name)(low, high)] for (name, low, high), in default_policy]
    raise ValueError(f"policy must be 'autoaugment' or 'randaugment'; got {kind!r}")


def randaugment_magnitude(op: nn.Module, m: int, height: int, width: int) -> float | None:
    """RandAugment's magnitude for one op, as ``kornia...RandAugment.forward_parameters`` sets it."""
    if op.magnitude_range is None:
        return None
    low, high = (float(v) for v in op.magnitude_range)
    level = m / 30
    mag = ((1 - level) if op._factor_name == "bits_factor" else level) * (high - low) + low
    return mag * {"translate_x": width, "translate_y": height}.get(op._factor_name, 1)


def warp(x: torch.Tensor, masks, boxes, mats: torch.Tensor, align_corners: bool):
    """Warp images (bilinear), integer masks (nearest) and boxes (their corners, re-boxed and clipped) by
    per-image 3x3 matrices in Kornia's pixel-index coordinates; what comes in from outside is 0."""
    from kornia.geometry.transform import warp_affine

    h, w = x.shape[-2:]
    affine = mats[:, :2, :]
    x = warp_affine(x, affine, (h, w), mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    if masks is not None:
        moved = warp_affine(masks[:, None].to(x.dtype), affine, (h, w), mode="nearest", padding_mode="zeros",
                            align_corners=align_corners)
        masks = moved[:, 0].round().to(masks.dtype)
    if boxes is not None:
        alive = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
        corners = box_corners(boxes) @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]
        boxes = quads_to_boxes(corners, alive, h, w)
    return x, masks, boxes


def _rows(t, rows):
    return None if t is None else t.index_select(0, rows)


def _put(t, rows, value):
    return t if t is None else t.index_copy(0, rows, value)


class GroupedPolicy(nn.Module):
    """Flip + scale jitter, then an auto policy drawn per image; called on the whole batch.

    ``trace``: set it to a list and every op group appends what it drew (op name, rows, magnitude,
    applied), for tests of the policy's distribution.
    """

    def __init__(self, scale_jitter: nn.Module, kind: str | None, randaugment_n: int, randaugment_m: int):
        super().__init__()
        self.scale_jitter = scale_jitter
        self.kind = kind
        self.table = policy_table(kind) if kind else []
        self.ops = nn.ModuleList(op for row in self.table for op in row)
        self.rounds = 0 if not kind else (2 if kind == "autoaugment" else randaugment_n)
        self.m = randaugment_m
        self.trace: list | None = None

    def forward(self, x, masks=None, boxes=None):
        x, masks, boxes = self._flip_and_jitter(x, masks, boxes)
        if self.kind == "autoaugment":
            sub = torch.randint(0, len(self.table), (x.shape[0],))
            draws = [sub * 2 + r for r in range(self.rounds)]  # flat index of op r of each image's sub-policy
        else:
            draws = [torch.randint(0, len(self.ops), (x.shape[0],)) for _ in range(self.rounds)]
        # Each op's parameters for all the images that drew it, in every round: one sampler call per op.
        counts = torch.bincount(torch.cat(draws), minlength=len(self.ops)).tolist() if draws else []
        params = {k: self._sample(k, c, x.shape) for k, c in enumerate(counts) if c}
        # x is the warp's own output from here on: the rounds write into it in place
        for r, drawn in enumerate(draws):
            x, masks, boxes = self._round(r, drawn, params, x, masks, boxes)
        return x, masks, boxes

    def _sample(self, k: int, count: int, shape: torch.Size) -> list:
        """Op k's parameters (Kornia's sampler) for `count` images, as a queue the rounds take from in turn."""
        op = self.ops[k]
        mag = randaugment_magnitude(op, self.m, *shape[-2:]) if self.kind == "randaugment" else None
        params = op.forward_parameters(torch.Size((count, *shape[1:])), mag=None if mag is None else torch.full((count,), mag))
        return [params, 0]

    @staticmethod
    def _take(queue: list, n: int) -> dict:
        params, start = queue
        queue[1] = start + n
        total = len(params["batch_prob"])
        return {key: value[start:start + n] if key != "forward_input_shape" and torch.is_tensor(value)
                and value.ndim and len(value) == total else value for key, value in params.items()}

    def _flip_and_jitter(self, x, masks, boxes):
        n, _, h, w = x.shape
        flip = torch.nonzero(torch.rand(n) < 0.5).flatten().to(x.device)  # RandomHorizontalFlip(p=0.5): exact
        x = x.index_copy(0, flip, x.index_select(0, flip).flip(-1))
        if masks is not None:
            masks = masks.index_copy(0, flip, masks.index_select(0, flip).flip(-1))
        if boxes is not None:
            b = boxes.index_select(0, flip)
            alive = ((b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1]))[..., None]
            mirrored = torch.stack([w - b[..., 2], b[..., 1], w - b[..., 0], b[..., 3]], -1)
            boxes = boxes.index_copy(0, flip, torch.where(alive, mirrored, b))
        jitter = self.scale_jitter
        params = jitter.forward_parameters(x.shape)
        mats = jitter.compute_transformation(x, params, jitter.flags)
        return warp(x, masks, boxes, mats, jitter.flags["align_corners"])

    def _round(self, r: int, drawn: torch.Tensor, queues: dict, x, masks, boxes):
        """One op per image: intensity ops in place, group by group; the geometric ones as one warp."""
        geometric: dict[bool, list] = {}  # align_corners -> [(rows, matrices)]: one warp per flag value
        by_op = torch.argsort(drawn, stable=True).split(torch.bincount(drawn, minlength=len(self.ops)).tolist())
        for k, rows in enumerate(by_op):
            if not len(rows):
                continue
            op = self.ops[k]
            params = self._take(queues[k], len(rows))
            applied = params["batch_prob"] > 0.5
            if self.trace is not None:
                factor = params.get(op._factor_name) if op._factor_name else None
                self.trace.append(dict(round=r, op=type(op).__name__, rows=rows, applied=applied, magnitude=factor))
            if not bool(applied.any()):
                continue
            every = bool(applied.all())
            rows_dev, on = rows.to(x.device), applied.to(x.device)
            group = x.index_select(0, rows_dev)
            if type(op).__name__ in GEOMETRIC:
                mats = op.op.compute_transformation(group, params, op.op.flags)
                if not every:
                    mats = torch.where(on[:, None, None], mats, torch.eye(3, device=x.device, dtype=mats.dtype))
                geometric.setdefault(op.op.flags["align_corners"], []).append((rows_dev, mats))
            else:
                out = op.op.apply_transform(group, params, op.op.flags)
                x.index_copy_(0, rows_dev, out if every else torch.where(on[:, None, None, None], out, group))
        for align, groups in geometric.items():
            rows = torch.cat([g[0] for g in groups])
            moved = warp(x.index_select(0, rows), _rows(masks, rows), _rows(boxes, rows),
                         torch.cat([g[1] for g in groups]), align)
            x.index_copy_(0, rows, moved[0])
            masks, boxes = _put(masks, rows, moved[1]), _put(boxes, rows, moved[2])
        return x, masks, boxes
