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
    The three numbers are summarize()'s first three, read from the precision table of the 'all' area range alone:
    the small/medium/large ranges, which no finding reads, tripled the evaluation's time.
    """
    gt = gt if isinstance(gt, COCO) else coco_from_dict(gt)
    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        result = gt.loadRes(detections)
        evaluator = COCOeval(gt, result, iouType="bbox")
        evaluator.params.areaRng, evaluator.params.areaRngLbl = evaluator.params.areaRng[:1], ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    params = evaluator.params
    # precision[iou threshold, recall, class, area range, max detections]; -1 where nothing matched
    precision = evaluator.eval["precision"][:, :, :, 0, params.maxDets.index(100)]
    mean = lambda p: float(p[p > -1].mean()) if (p > -1).any() else 0.0
    at = lambda iou: precision[np.flatnonzero(np.isclose(params.iouThrs, iou))[0]]
    return {"AP": mean(precision), "AP50": mean(at(0.5)), "AP75": mean(at(0.75))}
