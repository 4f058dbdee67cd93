"""Batches: index streams per epoch, whole batches augmented together on the device, side streams."""
from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Iterator

import torch

from ..augment.kornia import KorniaAugment
from ..augment.backends import make_augment
from ..data.tasks import TaskData, to_unit_nchw
from .config import TrainConfig, check_task_aug


def batch_targets(data: TaskData, index: torch.Tensor):
    if data.task == "classify":
        return data.labels[index]
    if data.task == "segment":
        return data.semantic[index]
    if data.task == "pose":
        return data.pose[index]
    return data.boxes[index], data.labels[index]


def make_batch_augment(data: TaskData, cfg: TrainConfig, device: str):
    """uint8 NHWC images + targets -> float NCHW images in [0, 1] + targets, augmented together."""
    size = data.images.shape[1]
    check_task_aug(data.task, cfg.aug)
    if data.task in ("classify", "pose"):
        # DALI's pipeline is built for the largest call: augmented_batches' ~AUG_IMAGES images, or one batch
        augment = make_augment(cfg.aug_backend, cfg.aug, size, max(AUG_IMAGES, cfg.batch_size), device, cfg.seed)
        return lambda images, targets: (augment(images), targets)
    if cfg.aug_backend != "kornia":
        raise ValueError(f"aug_backend {cfg.aug_backend!r} supports task 'classify' only; "
                         f"use aug_backend 'kornia' for task {data.task!r}")
    augment = KorniaAugment(cfg.aug, size, seed=cfg.seed).to(device)

    def apply(images, targets):
        x = to_unit_nchw(images)
        if data.task == "segment":
            x, _, masks = augment(x, masks=targets)
            return x, masks.long()
        boxes, labels = targets
        x, boxes, _ = augment(x, boxes=boxes)
        labels = labels.masked_fill((boxes[..., 2] - boxes[..., 0]) < 1, -1)  # boxes cropped away
        return x, (boxes, labels)

    return apply


AUG_IMAGES = 512  # images per augmentation call: Kornia's and DALI's per-call cost, paid once for several steps


def steps_per_call(batch_size: int) -> int:
    """Steps whose batches are augmented together (each image still draws its own ops): about AUG_IMAGES images."""
    return max(1, AUG_IMAGES // batch_size)


def epoch_batches(n: int, batch_size: int, epoch_steps: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches, epoch after epoch: a fresh permutation each epoch, the ragged end dropped."""
    while True:
        yield from torch.randperm(n, generator=rng)[: epoch_steps * batch_size].view(-1, batch_size)


def random_batches(n: int, batch_size: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield torch.randint(n, (batch_size,), generator=rng)


def augmented_batches(data: TaskData, augment, batches: Iterator[torch.Tensor], per_call: int):
    """(images, targets) per step: `per_call` steps' index batches augmented in one call, then split."""
    while True:
        chunk = list(itertools.islice(batches, per_call))
        index = torch.cat(chunk).to(data.images.device)
        images, targets = augment(data.images[index], batch_targets(data, index))
        sizes = [len(b) for b in chunk]
        parts = zip(*(t.split(sizes) for t in targets)) if isinstance(targets, tuple) else targets.split(sizes)
        yield from zip(images.split(sizes), parts)


def side_batches(data: TaskData, cfg: TrainConfig, batch_size: int, seed: int, device: str):
    """A second set's batches beside the labelled one (pseudo-labels, joint training's upstream task): drawn at
    random each step, with an augmentation stream of their own (the labelled batch's draws would correlate them)."""
    augment = make_batch_augment(data, replace(cfg, seed=seed, batch_size=batch_size), device)
    return augmented_batches(data, augment, random_batches(len(data), batch_size, torch.Generator().manual_seed(seed)),
                             steps_per_call(batch_size))
