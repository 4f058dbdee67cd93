"""Task datasets held whole on the training device as uint8 tensors (airbench style)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..models.nets import TASKS
from .world import load_world, to_coco


def to_unit_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> contiguous float NCHW in [0, 1]. Contiguous, not a permuted view: fed a channels_last
    batch, bf16 convolutions on the CPU ran at less than half their speed (make bench)."""
    return images.permute(0, 3, 1, 2).contiguous().float().div_(255)


@dataclass(frozen=True)
class TaskData:
    task: str
    images: torch.Tensor                 # uint8 [N,H,W,3] on the training device
    classes: tuple[str, ...]
    labels: torch.Tensor | None = None   # classify: [N]; detect: [N,K] with -1 for padding
    semantic: torch.Tensor | None = None # segment: [N,H,W], 0 = background, k+1 = class k
    boxes: torch.Tensor | None = None    # detect: [N,K,4] xyxy pixels
    coco: dict | None = None             # detect: COCO ground truth, image ids = index + 1
    pose: torch.Tensor | None = None     # pose: [N,3] cos and sin of the angle's phase in the shape's symmetry period, tilt

    def __len__(self) -> int:
        return len(self.images)


def check_fraction(label_fraction: float) -> float:
    if not 0 < label_fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1] (the share of the downstream training labels used); "
                         f"got {label_fraction}")
    return label_fraction


def load_task_data(path: str | Path, task: str, device: str = "cpu", label_fraction: float = 1.0) -> TaskData:
    """Load a world file made by the 'world' rule for `task`, keeping the first `label_fraction` of it."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    check_fraction(label_fraction)
    world = load_world(path)
    n = max(1, round(len(world["images"]) * label_fraction))
    world = {k: (v[:n] if k != "classes" else v) for k, v in world.items()}
    data = TaskData(task=task, images=torch.from_numpy(world["images"]).to(device),
                    classes=tuple(str(c) for c in world["classes"]))
    if task == "classify":
        if "labels" not in world or world["labels"].ndim != 1:
            raise ValueError(f"{path} is not a classification world file (task 'classify' needs one label per image)")
        return replace(data, labels=torch.from_numpy(world["labels"]).to(device))
    if task == "pose":
        if "pose" not in world:
            raise ValueError(f"{path} is not a classification world file (task 'pose' needs each object's pose)")
        phase = 2 * np.pi * world["pose"][:, 0]
        targets = np.stack([np.cos(phase), np.sin(phase), world["pose"][:, 1]], 1).astype(np.float32)
        return replace(data, pose=torch.from_numpy(targets).to(device))
    if task == "segment" and "semantic" not in world and "masks" in world:
        # A classification file segments too: its one object's mask, labelled with its class (0 = background).
        semantic = world["masks"].astype(np.int64) * (world["labels"][:, None, None] + 1)
        return replace(data, semantic=torch.from_numpy(semantic).to(device))
    if "semantic" not in world:
        raise ValueError(f"{path} is not a scenes world file (task {task!r} needs scenes with masks and boxes)")
    if task == "segment":
        return replace(data, semantic=torch.from_numpy(world["semantic"]).long().to(device))
    return replace(data, labels=torch.from_numpy(world["labels"]).to(device),
                   boxes=torch.from_numpy(world["boxes"]).to(device), coco=to_coco(world))
