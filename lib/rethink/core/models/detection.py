"""CenterNet-style targets, loss and decoding for the single-stage detector in models.DetectHead.

Written here rather than taken from a library because torchvision's detectors are far larger than
a 32-64 px study needs; the pieces are the published CenterNet recipe (Zhou et al. 2019).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def encode_targets(boxes: torch.Tensor, labels: torch.Tensor, num_classes: int, shape: tuple[int, int], stride: int):
    """Gaussian centre heat maps [B,C,h,w], log box sizes [B,2,h,w] and a mask of centre cells [B,h,w].

    boxes [B,K,4] xyxy in pixels, labels [B,K] with -1 (or an all-zero box) for padding.
    """
    b, k = labels.shape
    h, w = shape
    valid = (labels >= 0) & ((boxes[..., 2] - boxes[..., 0]) >= 1) & ((boxes[..., 3] - boxes[..., 1]) >= 1)
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1) / stride  # [B,K,2] in cells
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2 / stride - 0.5  # cell coordinates
    cell = centre.round().clamp(min=0).minimum(torch.tensor([w - 1, h - 1], device=boxes.device))
    sigma = (size.amin(-1) / 3).clamp(min=0.5)  # [B,K]
    ys = torch.arange(h, device=boxes.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=boxes.device).view(1, 1, 1, w)
    dist2 = (xs - cell[..., 0, None, None]) ** 2 + (ys - cell[..., 1, None, None]) ** 2
    gauss = torch.exp(-dist2 / (2 * sigma[..., None, None] ** 2)) * valid[..., None, None]  # [B,K,h,w]
    onehot = F.one_hot(labels.clamp(min=0), num_classes).float() * valid[..., None]  # [B,K,C]
    heatmap = (gauss[:, :, None] * onehot[..., None, None]).amax(1)  # [B,C,h,w]

    log_size = torch.zeros(b, 2, h, w, device=boxes.device)
    centres = torch.zeros(b, h, w, dtype=torch.bool, device=boxes.device)
    bi, ki = valid.nonzero(as_tuple=True)
    cx, cy = cell[bi, ki, 0].long(), cell[bi, ki, 1].long()
    log_size[bi, :, cy, cx] = size[bi, ki].log()
    centres[bi, cy, cx] = True
    return heatmap, log_size, centres


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos = -(1 - p) ** alpha * p.log() * positive
    neg = -((1 - target) ** beta) * p ** alpha * (1 - p).log() * (1 - positive)
    return (pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def detection_loss(outputs: dict, boxes: torch.Tensor, labels: torch.Tensor, stride: int) -> torch.Tensor:
    heat_logits, size_pred = outputs["heatmap"].float(), outputs["size"].float()
    heatmap, log_size, centres = encode_targets(boxes, labels, heat_logits.shape[1], heat_logits.shape[-2:], stride)
    size_loss = (F.l1_loss(size_pred, log_size, reduction="none").sum(1) * centres).sum() / centres.sum().clamp(min=1)
    return focal_loss(heat_logits, heatmap) + 0.5 * size_loss


def decode(outputs: dict, stride: int, top_k: int = 20) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Peaks of the heat map (3x3 max-pool as NMS) -> boxes [B,k,4] xyxy, scores [B,k], classes [B,k]."""
    heat = outputs["heatmap"].float().sigmoid()
    b, c, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    scores, index = peaks.reshape(b, -1).topk(min(top_k, c * h * w))
    classes, cell = index // (h * w), index % (h * w)
    cy, cx = (cell // w).float(), (cell % w).float()
    size = outputs["size"].float().reshape(b, 2, -1).gather(2, cell[:, None].expand(-1, 2, -1)).exp() * stride
    centre_x, centre_y = (cx + 0.5) * stride, (cy + 0.5) * stride
    boxes = torch.stack([centre_x - size[:, 0] / 2, centre_y - size[:, 1] / 2,
                         centre_x + size[:, 0] / 2, centre_y + size[:, 1] / 2], dim=-1)
    return boxes, scores, classes


def to_coco_results(boxes, scores, classes, image_ids, image_size: int, min_score: float = 0.01) -> list[dict]:
    """COCO result dicts (category ids are class index + 1, as world.to_coco writes them)."""
    boxes = boxes.clamp(0, image_size).cpu()
    results = []
    for img_boxes, img_scores, img_classes, image_id in zip(boxes, scores.cpu(), classes.cpu(), image_ids):
        for (x0, y0, x1, y1), score, cls in zip(img_boxes.tolist(), img_scores.tolist(), img_classes.tolist()):
            if score >= min_score and x1 > x0 and y1 > y0:
                results.append({"image_id": int(image_id), "category_id": int(cls) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results
