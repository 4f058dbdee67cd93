"""Self-training's pieces (Zoph et al. 2020, noisy student): a teacher's pseudo-labels on an unlabeled
pool, and the normalised loss that mixes them with the human labels.

Everything here works on whole batches on the training device: the unlabeled pool is one uint8
tensor, labelled in batches, never image by image in Python.
"""
from __future__ import annotations

import math

import torch

from ..models import detection
from ..data.tasks import TaskData, to_unit_nchw
from .hardware import autocast


def check_threshold(threshold: float) -> float:
    if not 0 <= threshold < 1:
        raise ValueError(f"pseudo_threshold must be in [0, 1) (the teacher's confidence a pseudo-label needs); "
                         f"got {threshold}")
    return threshold


def check_weight(weight: float) -> float:
    if weight < 0:
        raise ValueError(f"pseudo_weight must be >= 0 (alpha, the pseudo-label loss's weight); got {weight}")
    return weight


@torch.no_grad()  # not inference_mode: pseudo-labels become a student's targets, which autograd saves
def batched(fn, images: torch.Tensor, device, batch_size: int = 512, precision: str = "fp32"):
    """fn over a uint8 NHWC tensor in batches, each as float NCHW in [0, 1] on `device`, at the training
    `precision`; the outputs concatenated (a dict of outputs key by key)."""
    with autocast(device, precision):
        outputs = [fn(to_unit_nchw(images[i:i + batch_size].to(device)))
                   for i in range(0, len(images), batch_size)]
    if isinstance(outputs[0], dict):
        return {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}
    return torch.cat(outputs)


def teacher_outputs(teacher, images: torch.Tensor, precision: str = "fp32"):
    """The teacher's raw outputs over a uint8 NHWC pool (eval mode, no augmentation)."""
    teacher.eval()
    return batched(teacher, images, next(teacher.parameters()).device, precision=precision)


def pseudo_label_classes(logits: torch.Tensor, threshold: float, soft: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher logits [N,C] -> (keep [N] bool, targets [N,C]): an image is kept when the teacher's top
    probability is at least `threshold`; its target is the teacher's distribution (soft) or one-hot (hard)."""
    check_threshold(threshold)
    probs = logits.float().softmax(1)
    confidence, top = probs.max(1)
    targets = probs if soft else torch.nn.functional.one_hot(top, probs.shape[1]).float()
    return confidence >= threshold, targets


def pseudo_label_boxes(outputs: dict, stride: int, threshold: float, max_boxes: int,
                       image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Detector outputs -> (boxes [N,K,4], labels [N,K]) in the training format: the decoded boxes
    scoring at least `threshold`, clipped to the image, padded with label -1 (Zoph et al.: boxes
    above a score threshold become the student's targets). An image with none keeps only padding."""
    check_threshold(threshold)
    boxes, scores, classes = detection.decode(outputs, stride, top_k=max_boxes)
    boxes = boxes.clamp(0, image_size)
    keep = (scores >= threshold) & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    return boxes * keep[..., None], classes.masked_fill(~keep, -1)


def pseudo_label(teacher, pool: torch.Tensor, task: str, classes: tuple[str, ...], threshold: float,
                 soft: bool = True, max_boxes: int = 8, precision: str = "fp32") -> tuple[TaskData, dict]:
    """Label the unlabeled `pool` (uint8 NHWC) with `teacher` for `task`. Returns the pseudo-labelled
    data (classify: the confident images with soft or hard class distributions as labels; detect: every
    image with its confident boxes) and a summary of how much was kept."""
    outputs = teacher_outputs(teacher, pool, precision)
    if task == "classify":
        keep, targets = pseudo_label_classes(outputs, threshold, soft)
        data = TaskData("classify", pool[keep.to(pool.device)], classes, labels=targets[keep].to(pool.device))
        return data, {"kept": int(keep.sum()), "pool": len(pool), "kept_index": keep.nonzero().flatten().cpu(),
                      "kept_class": targets[keep].argmax(1).cpu()}
    if task == "detect":
        boxes, labels = pseudo_label_boxes(outputs, teacher.head.stride, threshold, max_boxes, pool.shape[1])
        data = TaskData("detect", pool, classes, labels=labels.to(pool.device), boxes=boxes.to(pool.device))
        return data, {"kept": int((labels >= 0).sum()), "pool": len(pool)}
    raise ValueError(f"pseudo-labelling supports task 'classify' or 'detect'; got {task!r}")


class LossNormaliser:
    """Zoph et al. 2020 (Sec. 3.3): the human and pseudo-label losses can differ in scale by a lot, and
    their balance shifts with augmentation strength, so the pseudo loss is rescaled by the ratio of the
    two losses' moving averages:  L = (L_h + alpha * (avg L_h / avg L_p) * L_p) / (1 + alpha).
    Without normalisation:        L = L_h + alpha * L_p."""

    def __init__(self, alpha: float = 1.0, normalise: bool = True, momentum: float = 0.9):
        check_weight(alpha)
        self.alpha, self.normalise, self.momentum = alpha, normalise, momentum
        self.avg_human = self.avg_pseudo = None

    def __call__(self, human: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
        if not self.normalise:
            return human + self.alpha * pseudo
        h, p = human.detach().float(), pseudo.detach().float()
        m = self.momentum
        self.avg_human = h if self.avg_human is None else m * self.avg_human + (1 - m) * h
        self.avg_pseudo = p if self.avg_pseudo is None else m * self.avg_pseudo + (1 - m) * p
        ratio = self.avg_human / self.avg_pseudo.clamp(min=1e-8)
        return (human + self.alpha * ratio * pseudo) / (1 + self.alpha)


def pseudo_label_quality(info: dict, pool_labels, pool_classes, classes: tuple[str, ...]) -> dict[str, float]:
    """How good a classification teacher's kept pseudo-labels are, from the pool's hidden labels: the
    share of the pool kept, the share of kept images that show a downstream class at all, and the
    accuracy of the pseudo-labels on those. A pool whose labels are unknown (-1, e.g. STL-10's unlabeled
    split) says nothing of the last two: NaN."""
    kept_share = info["kept"] / max(info["pool"], 1)
    labels = torch.as_tensor(pool_labels)
    if len(labels) and (labels < 0).all():
        return {"kept_share": kept_share, "in_domain_share": math.nan, "in_domain_accuracy": math.nan}
    names = [str(pool_classes[i]) for i in labels[info["kept_index"]].tolist()]
    in_domain = [(name, int(c)) for name, c in zip(names, info["kept_class"].tolist()) if name in classes]
    correct = sum(classes.index(name) == c for name, c in in_domain)
    return {"kept_share": kept_share,
            "in_domain_share": len(in_domain) / max(len(names), 1),
            "in_domain_accuracy": correct / max(len(in_domain), 1)}
