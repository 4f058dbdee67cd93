"""Evaluation metrics: accuracy, mean IoU, and COCO box AP through pycocotools."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    # A bincount of (target, pred) pairs: torch has no segmentation metric of its own.
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean over classes present in prediction or target of TP / (TP + FP + FN)."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean().item()


def coco_from_dict(gt: dict) -> COCO:
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_box_ap(gt: COCO | dict, detections: list[dict]) -> dict[str, float]:
    """COCO AP, AP50 and AP75 of `detections` (COCO result format, image_id/category_id/bbox xywh/score).

    An empty detection list scores 0 rather than raising, as an untrained detector may emit nothing.
    """
    gt = gt if isinstance(gt, COCO) else coco_from_dict(gt)
    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        result = gt.loadRes(detections)
        evaluator = COCOeval(gt, result, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = np.maximum(evaluator.stats[:3], 0.0)  # pycocotools reports -1 where nothing matched
    return {"AP": float(stats[0]), "AP50": float(stats[1]), "AP75": float(stats[2])}
