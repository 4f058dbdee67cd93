"""Evaluation: each task's loss and metric on a whole split (accuracy, mIoU, pose accuracy, COCO AP)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models import detection
from . import metrics
from ..data.tasks import TaskData, to_unit_nchw
from ..models.nets import Net
from .hardware import autocast
from .batches import batch_targets


POSE_TOLERANCE = 0.1   # pose accuracy: the predicted angle within this share of the shape's symmetry period


def task_loss(model: Net, outputs, targets, task: str) -> torch.Tensor:
    if task == "classify":
        return F.cross_entropy(outputs.float(), targets)
    if task == "segment":
        return F.cross_entropy(outputs.float(), targets.long())
    if task == "pose":
        return F.mse_loss(outputs.float(), targets)
    return detection.detection_loss(outputs, *targets, stride=model.head.stride)


# Each task's headline metric: the validation score that selects a run's model for its test split (loop.fit).
SELECTED_BY = {"classify": "accuracy", "segment": "miou", "detect": "AP", "pose": "pose_accuracy"}


@torch.inference_mode()
def evaluate(model: Net, data: TaskData, batch_size: int = 256, precision: str = "fp32") -> dict[str, float]:
    """Validation metrics: loss plus accuracy (classify), mIoU (segment), pose accuracy (pose: the angle within
    POSE_TOLERANCE of the symmetry period) or COCO AP/AP50/AP75 (detect), computed in fp32 from the model's
    outputs at the training `precision`. Loss and accuracy sums stay on the device until the end."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, confusion, results = 0.0, 0, 0, []
    n = len(data)
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n), device=data.images.device)
        images = to_unit_nchw(data.images[index]).to(device)
        targets = batch_targets(data, index)
        with autocast(device, precision):
            outputs = model(images)
        loss_sum = loss_sum + task_loss(model, outputs, targets, data.task) * len(index)
        if data.task == "classify":
            correct = correct + (outputs.argmax(1) == targets).sum()
        elif data.task == "pose":
            error = torch.atan2(outputs[:, 1].float(), outputs[:, 0].float()) - torch.atan2(targets[:, 1], targets[:, 0])
            error = torch.remainder(error + math.pi, 2 * math.pi) - math.pi  # around the circle
            correct = correct + (error.abs() <= 2 * math.pi * POSE_TOLERANCE).sum()
        elif data.task == "segment":
            confusion = confusion + metrics.confusion_matrix(outputs.argmax(1), targets, model.cfg.num_classes + 1)
        else:
            boxes, scores, classes = detection.decode(outputs, model.head.stride)
            results += detection.to_coco_results(boxes, scores, classes, (index + 1).tolist(), data.images.shape[1])
    model.train()
    out = {"loss": float(loss_sum) / n}
    if data.task == "classify":
        out["accuracy"] = int(correct) / n
    elif data.task == "pose":
        out["pose_accuracy"] = int(correct) / n
    elif data.task == "segment":
        out["miou"] = metrics.mean_iou(confusion)
    else:
        out.update(metrics.coco_box_ap(data.coco, results))
    return out
