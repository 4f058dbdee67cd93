import torch

from rethink.core.models import detection
from rethink.core.training import metrics


def test_perfect_outputs_decode_to_ap_one():
    """Encode boxes aligned with the stride grid, feed the targets back as predictions: AP must be 1."""
    stride, size = 4, 64
    boxes = torch.tensor([[[6., 6., 22., 14.], [30., 38., 54., 54.]], [[2., 18., 18., 42.], [0., 0., 0., 0.]]])
    labels = torch.tensor([[0, 2], [1, -1]])
    heatmap, log_size, _ = detection.encode_targets(boxes, labels, 3, (size // stride, size // stride), stride)
    assert heatmap.max() == 1 and heatmap[1].amax(dim=(1, 2)).tolist() == [0.0, 1.0, 0.0]
    logits = torch.logit(heatmap.clamp(1e-6, 1 - 1e-6))
    out_boxes, scores, classes = detection.decode({"heatmap": logits, "size": log_size}, stride)
    results = detection.to_coco_results(out_boxes, scores, classes, [1, 2], size, min_score=0.5)
    gt = {"images": [{"id": 1, "width": size, "height": size}, {"id": 2, "width": size, "height": size}],
          "categories": [{"id": k + 1, "name": str(k)} for k in range(3)],
          "annotations": [{"id": i + 1, "image_id": img, "category_id": c + 1, "iscrowd": 0,
                           "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}
                          for i, (img, c, (x0, y0, x1, y1)) in enumerate(
                              [(1, 0, boxes[0, 0].tolist()), (1, 2, boxes[0, 1].tolist()), (2, 1, boxes[1, 0].tolist())])]}
    assert len(results) == 3
    ap = metrics.coco_box_ap(gt, results)
    assert ap["AP"] > 0.999 and ap["AP75"] > 0.999


def test_empty_detections_score_zero():
    gt = {"images": [{"id": 1, "width": 8, "height": 8}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 4, 4], "area": 16}]}
    assert metrics.coco_box_ap(gt, []) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}


def test_loss_is_lower_for_the_right_answer():
    boxes = torch.tensor([[[8., 8., 24., 24.]]])
    labels = torch.tensor([[1]])
    heatmap, log_size, _ = detection.encode_targets(boxes, labels, 2, (16, 16), 4)
    right = {"heatmap": torch.logit(heatmap.clamp(1e-4, 1 - 1e-4)), "size": log_size}
    wrong = {"heatmap": torch.zeros_like(heatmap), "size": torch.zeros_like(log_size)}
    assert detection.detection_loss(right, boxes, labels, 4) < detection.detection_loss(wrong, boxes, labels, 4)


def test_miou():
    target = torch.tensor([[0, 0, 1, 1]])
    assert metrics.mean_iou(metrics.confusion_matrix(target, target, 3)) == 1.0
    pred = torch.tensor([[0, 1, 1, 1]])  # class 0: 1/2, class 1: 2/3
    assert abs(metrics.mean_iou(metrics.confusion_matrix(pred, target, 3)) - (0.5 + 2 / 3) / 2) < 1e-9


def test_box_ap_equals_pycocotools_summarize():
    """coco_box_ap reads the 'all' area range alone; its AP, AP50 and AP75 must be summarize()'s first three on
    noisy detections (some right, some shifted, some wrong class, many spurious) over a few dozen images."""
    import contextlib
    import io

    import numpy as np
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    images, annotations, detections = [], [], []
    for img in range(1, 41):
        images.append({"id": img, "width": 64, "height": 64})
        for _ in range(rng.integers(1, 4)):
            x, y, w, h = *rng.uniform(0, 40, 2), *rng.uniform(2, 24, 2)  # small and medium boxes both
            cls = int(rng.integers(1, 4))
            annotations.append({"id": len(annotations) + 1, "image_id": img, "category_id": cls, "iscrowd": 0,
                                "bbox": [x, y, w, h], "area": w * h})
            shift = rng.normal(0, 2, 2)
            detections.append({"image_id": img, "category_id": cls if rng.random() < 0.8 else 1 + cls % 3,
                               "bbox": [x + shift[0], y + shift[1], w, h], "score": float(rng.uniform(0.3, 1))})
        detections += [{"image_id": img, "category_id": int(rng.integers(1, 4)),
                        "bbox": [*rng.uniform(0, 50, 2), *rng.uniform(2, 14, 2)], "score": float(rng.uniform(0, 0.5))}
                       for _ in range(10)]
    gt = metrics.coco_from_dict({"images": images, "categories": [{"id": k, "name": str(k)} for k in (1, 2, 3)],
                                 "annotations": annotations})
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(detections), iouType="bbox")
        evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    ap = metrics.coco_box_ap(gt, detections)
    assert 0.05 < evaluator.stats[0] < 0.95  # neither trivial nor perfect
    assert [ap["AP"], ap["AP50"], ap["AP75"]] == [float(v) for v in evaluator.stats[:3]]
