"""Boxes through geometric augmentation: a box travels as its four corners (Kornia's keypoints, or any
3x3 matrix), and comes back as the axis-aligned box of (the transformed quadrilateral ∩ the image)."""
from __future__ import annotations

import torch


def box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """[B,K,4] continuous xyxy -> [B,4K,2] corner points in pixel-index coordinates.

    Kornia's pixel coordinates put pixel ``i`` at ``i`` (a flip maps ``x -> W-1-x``), so
    the continuous extent ``[x1, x2)`` is ``[x1 - 0.5, x2 - 0.5]`` there.
    """
    x1, y1, x2, y2 = (boxes[..., i] - 0.5 for i in range(4))
    pts = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                       torch.stack([x2, y2], -1), torch.stack([x1, y2], -1)], dim=2)  # [B,K,4,2]
    return pts.reshape(boxes.shape[0], -1, 2)


def quads_to_boxes(kp: torch.Tensor, alive: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B,4K,2] transformed corners -> [B,K,4] boxes: bbox of (quadrilateral ∩ image).

    Zeroed: rows not ``alive`` (padding / already dropped) and degenerate boxes: clipped
    area < 1 px², or a box that contains no pixel centre in x or in y. Such a box has
    no pixel in the nearest-resampled mask, e.g. a sliver of an object cut by the border.
    """
    b = kp.shape[0]
    quads = kp.reshape(b, -1, 4, 2) + 0.5  # back to continuous coordinates
    out = clipped_quad_bbox(quads, float(w), float(h))
    x1, y1, x2, y2 = out.unbind(-1)
    # pixel i has its centre at i + 0.5: some centre lies in [x1, x2] iff ceil(x1-.5) <= floor(x2-.5)
    has_x = torch.ceil(x1 - 0.5) <= torch.floor(x2 - 0.5)
    has_y = torch.ceil(y1 - 0.5) <= torch.floor(y2 - 0.5)
    keep = alive & ((x2 - x1) * (y2 - y1) >= 1.0) & has_x & has_y
    return torch.where(keep[..., None], out, torch.zeros_like(out))


def clipped_quad_bbox(q: torch.Tensor, w: float, h: float) -> torch.Tensor:
    """Axis-aligned bbox of ``convex quad [...,4,2] ∩ [0,w]x[0,h]`` (zeros if empty).

    The intersection polygon's vertices are among: quad vertices inside the image, image
    corners inside the quad, and quad-edge / image-border crossings. Taking the bbox of
    those points (rather than clipping the quad's bbox) keeps a rotated/sheared object
    that is cut by the border tight around its visible part. For axis-aligned quads it
    equals plain clipping.
    """
    eps = 1e-4
    x, y = q[..., 0], q[..., 1]
    pts = [q]
    oks = [(x >= -eps) & (x <= w + eps) & (y >= -eps) & (y <= h + eps)]
    # image corners inside the (convex, either orientation) quad
    corners = q.new_tensor([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    edges = q.roll(-1, dims=-2) - q  # [...,4,2]
    d = corners[:, None, :] - q[..., None, :, :]  # [...,4 corners,4 vertices,2]
    cross = edges[..., None, :, 0] * d[..., 1] - edges[..., None, :, 1] * d[..., 0]
    area2 = (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)
    inside = ((cross >= -eps).all(-1) | (cross <= eps).all(-1)) & (area2.abs() > eps)[..., None]
    pts.append(corners.expand(q.shape[:-2] + (4, 2)))
    oks.append(inside)
    # quad edges crossing the image border lines
    p, r = q, q.roll(-1, dims=-2)
    for axis, limit_other, values in ((0, h, (0.0, w)), (1, w, (0.0, h))):
        other = 1 - axis
        den = r[..., axis] - p[..., axis]
        nonflat = den.abs() > 1e-9
        den = torch.where(nonflat, den, torch.ones_like(den))
        for v in values:
            t = (v - p[..., axis]) / den
            o = p[..., other] + t * (r[..., other] - p[..., other])
            ok = nonflat & (t >= 0) & (t <= 1) & (o >= -eps) & (o <= limit_other + eps)
            pt = torch.stack([torch.full_like(o, v), o], -1) if axis == 0 else \
                torch.stack([o, torch.full_like(o, v)], -1)
            pts.append(pt)
            oks.append(ok)
    pts_all = torch.cat(pts, dim=-2)  # [...,N,2]
    ok_all = torch.cat(oks, dim=-1)  # [...,N]
    inf = torch.full_like(pts_all[..., 0], float("inf"))
    px, py = pts_all[..., 0], pts_all[..., 1]
    x1 = torch.where(ok_all, px, inf).amin(-1).clamp(0, w)
    y1 = torch.where(ok_all, py, inf).amin(-1).clamp(0, h)
    x2 = torch.where(ok_all, px, -inf).amax(-1).clamp(0, w)
    y2 = torch.where(ok_all, py, -inf).amax(-1).clamp(0, h)
    box = torch.stack([x1, y1, x2, y2], dim=-1)
    return torch.where(ok_all.any(-1)[..., None], box, torch.zeros_like(box))
