"""Tests for rethink.core.augment and rethink.core.augment.dali (CPU only; Kornia and DALI CPU pipelines)."""

from __future__ import annotations

import re

import pytest
import torch

from helpers import requires_dali
from rethink.core.augment.agreement import flip_crop_dali, flip_crop_kornia
from rethink.core.augment.ladder import (BACKENDS, DALI_EXTRA, ENGINES, LEVELS, check_backend, check_level, dali_installed)
from rethink.core.augment.kornia import KorniaAugment
from rethink.core.augment.backends import make_augment
from rethink.core.augment.dali import DaliAugment

# the backends this install has: DALI's tests are skipped without the [dali] extra
INSTALLED_BACKENDS = [pytest.param(b, marks=requires_dali) if b == "dali" else b for b in BACKENDS]

SIZE = 32
AUG_LEVELS = [lvl for lvl in LEVELS if lvl != "S0"]


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _uint8_batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, SIZE, SIZE, 3), dtype=torch.uint8, generator=g)


def _float_batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    return _uint8_batch(n, seed).permute(0, 3, 1, 2).float() / 255.0


def _rectangles(n: int = 16, seed: int = 0):
    """Black images with up to 3 bright, disjoint rectangles; boxes = rectangles; masks = ids.

    Row 3 of the boxes is always padding (all zero), and sample 0 has only one object.
    """
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 3, SIZE, SIZE)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.int64)
    boxes = torch.zeros(n, 4, 4)
    # three horizontal bands so rectangles never overlap
    bands = [(0, 10), (11, 21), (22, 32)]
    for i in range(n):
        for k, (y0, y1) in enumerate(bands):
            if i == 0 and k > 0:
                continue
            h = int(torch.randint(5, y1 - y0 + 1, (1,), generator=g))
            w = int(torch.randint(6, 16, (1,), generator=g))
            top = y0 + int(torch.randint(0, y1 - y0 - h + 1, (1,), generator=g))
            left = int(torch.randint(0, SIZE - w + 1, (1,), generator=g))
            images[i, :, top:top + h, left:left + w] = 1.0
            masks[i, top:top + h, left:left + w] = k + 1
            boxes[i, k] = torch.tensor([left, top, left + w, top + h], dtype=torch.float32)
    return images, boxes, masks


# ---------------------------------------------------------------------------------------
# argument checking
# ---------------------------------------------------------------------------------------


def test_check_level_and_backend():
    for lvl in ("S0", "S1", "S2", "S3", "S4"):
        assert check_level(lvl) == lvl
    assert check_backend("kornia") == "kornia"
    if dali_installed():
        assert check_backend("dali") == "dali"
    else:  # the error says how to get it, before any training
        with pytest.raises(ValueError, match=re.escape(DALI_EXTRA)):
            check_backend("dali")
    with pytest.raises(ValueError) as e:
        check_level("S9")
    assert str(e.value) == "aug (augmentation level) must be one of S0, S1, S2, S3, S4; got 'S9'"
    with pytest.raises(ValueError) as e:
        check_backend("torchvision")
    assert "aug_backend" in str(e.value) and "kornia, dali" in str(e.value) and "'torchvision'" in str(e.value)


@pytest.mark.parametrize("backend", INSTALLED_BACKENDS)
def test_bad_level_raises_in_constructors(backend):
    with pytest.raises(ValueError, match=r"aug \(augmentation level\) must be one of S0, S1, S2, S3, S4"):
        make_augment(backend, "S9", SIZE, 8, "cpu", 0)
    with pytest.raises(ValueError, match="aug_backend"):
        make_augment("opencv", "S1", SIZE, 8, "cpu", 0)
    with pytest.raises(ValueError, match="S0, S1"):
        KorniaAugment("s1", SIZE)
    if backend == "dali":
        with pytest.raises(ValueError, match="S0, S1"):
            DaliAugment("", SIZE, 8)


# ---------------------------------------------------------------------------------------
# Kornia
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_kornia_p0_and_s0_are_identity(level):
    images, boxes, masks = _rectangles(6)
    for aug in (KorniaAugment(level, SIZE, p=0.0, seed=0), KorniaAugment("S0", SIZE, seed=3)):
        y, b, m = aug(images, boxes, masks)
        assert torch.equal(y, images) and torch.equal(b, boxes) and torch.equal(m, masks)
        assert torch.equal(aug(images), images)
        y, b, m = aug(images, masks=masks)
        assert b is None and torch.equal(m, masks)


@pytest.mark.parametrize("engine", ENGINES)
def test_kornia_partial_p_leaves_unselected_images_untouched(engine):
    images, boxes, masks = _rectangles(32)
    y, b, m = KorniaAugment("S3", SIZE, p=0.5, seed=0, engine=engine)(images, boxes, masks)
    same = [torch.equal(y[i], images[i]) for i in range(32)]
    assert 4 <= sum(same) <= 28
    for i in range(32):
        if same[i]:
            assert torch.equal(m[i], masks[i]) and torch.equal(b[i], boxes[i])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("engine", ENGINES)
def test_kornia_shapes_and_dtypes(level, engine):
    images, boxes, masks = _rectangles(8)
    aug = KorniaAugment(level, SIZE, seed=0, engine=engine)
    y = aug(images)
    assert isinstance(y, torch.Tensor) and y.shape == images.shape and y.dtype == torch.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    y, b, m = aug(images, boxes, masks)
    assert y.shape == images.shape and b.shape == boxes.shape and m.shape == masks.shape
    assert b.dtype == boxes.dtype and m.dtype == masks.dtype
    y, b, m = aug(images, boxes=boxes)
    assert m is None and b.shape == boxes.shape
    m8 = masks.to(torch.uint8)
    assert aug(images, masks=m8)[2].dtype == torch.uint8


@pytest.mark.parametrize("level", AUG_LEVELS)
@pytest.mark.parametrize("engine", ENGINES)
def test_kornia_seeded_determinism_and_global_rng_untouched(level, engine):
    images, boxes, masks = _rectangles(8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = KorniaAugment(level, SIZE, engine=engine, seed=7), KorniaAugment(level, SIZE, engine=engine, seed=7)
    out_a = [a(images, boxes, masks) for _ in range(2)]
    out_b = [b(images, boxes, masks) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state), "global RNG must not be consumed"
    for oa, ob in zip(out_a, out_b):
        for ta, tb in zip(oa, ob):
            assert torch.equal(ta, tb)
    assert not torch.equal(out_a[0][0], out_a[1][0]), "consecutive calls should differ"
    other = KorniaAugment(level, SIZE, engine=engine, seed=8)(images, boxes, masks)
    assert not torch.equal(other[0], out_a[0][0])
    # the targets passed do not change the random draws
    y_only = KorniaAugment(level, SIZE, engine=engine, seed=7)(images)
    y_b, b_only, _ = KorniaAugment(level, SIZE, engine=engine, seed=7)(images, boxes=boxes)
    assert torch.equal(y_only, out_a[0][0]) and torch.equal(y_b, out_a[0][0])
    assert torch.equal(b_only, out_a[0][1])


@pytest.mark.parametrize("level", ["S2", "S4"])
def test_kornia_per_batch_policy_option(level):
    images, boxes, masks = _rectangles(8)
    aug = KorniaAugment(level, SIZE, seed=0, engine="modules", per_image_policy=False)
    assert len(aug.policies) == 1
    y, b, m = aug(images, boxes, masks)
    assert y.shape == images.shape and b.shape == boxes.shape and m.shape == masks.shape
    y2, _, _ = KorniaAugment(level, SIZE, seed=0, engine="modules", per_image_policy=False)(images, boxes, masks)
    assert torch.equal(y, y2)


def test_kornia_seed_none_draws_once_from_global_rng():
    images = _float_batch(4)
    torch.manual_seed(5)
    y1 = KorniaAugment("S4", SIZE)(images)
    torch.manual_seed(5)
    y2 = KorniaAugment("S4", SIZE)(images)
    assert torch.equal(y1, y2)


def _object_pixels_inside(box, obj, tol=1.5):
    ys, xs = torch.nonzero(obj, as_tuple=True)
    cx, cy = xs.float() + 0.5, ys.float() + 0.5
    x1, y1, x2, y2 = box.tolist()
    return bool(((cx >= x1 - tol) & (cx <= x2 + tol) & (cy >= y1 - tol) & (cy <= y2 + tol)).all())


@pytest.mark.parametrize("level", AUG_LEVELS)
@pytest.mark.parametrize("engine", ENGINES)
def test_kornia_boxes_and_masks_stay_on_objects(level, engine):
    images, boxes, masks = _rectangles(24, seed=1)
    in_values = set(masks.unique().tolist())
    checked = 0
    covers: list[float] = []
    for seed in range(3):
        y, b, m = KorniaAugment(level, SIZE, seed=seed, engine=engine)(images, boxes, masks)
        assert m.dtype == masks.dtype and set(m.unique().tolist()) <= in_values
        assert (b[:, 3] == 0).all(), "padding rows stay all zero"
        for i in range(images.shape[0]):
            for k in range(3):
                obj = m[i] == k + 1
                box = b[i, k]
                if not boxes[i, k].any():
                    assert not box.any() and not obj.any()
                    continue
                if not box.any():
                    # dropped box: the object has left the image (no pixel in the mask)
                    assert obj.sum() == 0, (i, k, int(obj.sum()))
                    continue
                x1, y1, x2, y2 = box.tolist()
                assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
                assert (x2 - x1) * (y2 - y1) >= 1.0
                assert obj.any(), (i, k, box)
                assert _object_pixels_inside(box, obj), (i, k, box)
                # the box is on the object: the object fills a good part of it (a thin strip
                # rotated/sheared by the auto policy legitimately fills less of its bbox)
                ix1, iy1 = int(x1), int(y1)
                ix2, iy2 = max(int(x2 + 0.999), ix1 + 1), max(int(y2 + 0.999), iy1 + 1)
                cover = float(obj[iy1:iy2, ix1:ix2].float().mean())
                assert cover >= 0.1, (i, k, box, cover)
                covers.append(cover)
                if level == "S1":  # flip + scale + shift only: box == bbox of the mask
                    ys, xs = torch.nonzero(obj, as_tuple=True)
                    ref = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
                    assert (box - ref).abs().max() <= 1.5, (i, k, box, ref)
                    assert y[i, :, obj].mean() > 0.6  # bright rectangle under the mask/box
                checked += 1
    assert checked >= 100
    assert sorted(covers)[len(covers) // 2] >= 0.75  # median: boxes are tight


@pytest.mark.parametrize("level", AUG_LEVELS)
@pytest.mark.parametrize("engine", ENGINES)
def test_kornia_image_follows_mask_geometry(level, engine):
    # Labels: 1 = original background, 2..4 = objects, so label 0 marks pixels that the
    # geometric ops filled in from outside the image. The colour ops map pixel values by
    # a per-image function (sharpness aside), so wherever they leave some contrast, the
    # image's two-level split must match the mask on the non-filled pixels.
    images, boxes, masks = _rectangles(24, seed=3)
    agree = total = 0
    for seed in range(3):
        y, b, m = KorniaAugment(level, SIZE, seed=seed, engine=engine)(images, boxes, masks + 1)
        assert set(m.unique().tolist()) <= {0, 1, 2, 3, 4}
        for i in range(images.shape[0]):
            fg, bg = m[i] >= 2, m[i] == 1
            if fg.sum() < 10 or bg.sum() < 10:
                continue
            gray = y[i].mean(0)
            mu_o, mu_b = gray[fg].mean(), gray[bg].mean()
            if (mu_o - mu_b).abs() < 0.3:
                continue
            known = fg | bg
            pred = ((gray - mu_b).abs() > (gray - mu_o).abs()) & known
            iou = (pred & fg).sum() / (pred | fg).sum()
            total += 1
            agree += bool(iou > 0.7)
    assert total >= 20 and agree >= 0.95 * total, (agree, total)



SQRT2 = 2 ** 0.5


def test_a_box_rotated_45_degrees_becomes_its_diamonds_box():
    """The 2x2 box [4, 6) x [4, 6), rotated 45 degrees about its centre (5, 5): its corners land on a diamond with
    half-diagonal sqrt 2, so the box comes back as [5 - sqrt 2, 5 + sqrt 2] in x and y (by hand)."""
    from rethink.core.augment.boxes import box_corners, quads_to_boxes

    boxes = torch.tensor([[[4.0, 4.0, 6.0, 6.0]]])
    cos = sin = SQRT2 / 2
    rotation = torch.tensor([[cos, -sin], [sin, cos]])
    centre = torch.tensor([4.5, 4.5])  # (5, 5) in Kornia's pixel-index coordinates, where pixel i sits at i
    corners = (box_corners(boxes) - centre) @ rotation.T + centre
    out = quads_to_boxes(corners, torch.tensor([[True]]), 10, 10)
    assert out[0, 0].tolist() == pytest.approx([5 - SQRT2, 5 - SQRT2, 5 + SQRT2, 5 + SQRT2], abs=1e-5)


def test_a_rotated_bar_cut_by_the_border_keeps_only_its_visible_part():
    """A bar between the lines x + y = -1 and x + y = 1, running from (-3, 2) to (3, -2): inside the 10x10 image
    only the triangle (0, 0), (1, 0), (0, 1) shows, so its box is [0, 1] x [0, 1], not the clipped quad's box
    [0, 3] x [0, 3]."""
    from rethink.core.augment.boxes import clipped_quad_bbox

    bar = torch.tensor([[-3.0, 2.0], [2.0, -3.0], [3.0, -2.0], [-2.0, 3.0]])
    assert clipped_quad_bbox(bar, 10.0, 10.0).tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0], abs=1e-5)
    outside = bar - 20.0  # wholly off the image: nothing left
    assert clipped_quad_bbox(outside, 10.0, 10.0).tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_kornia_degenerate_boxes_are_zeroed(engine):
    images, boxes, masks = _rectangles(64, seed=2)
    # S3 zooms up to 2x: some objects leave the frame; their boxes must become all zero
    _, b, m = KorniaAugment("S3", SIZE, seed=0, engine=engine)(images, boxes, masks)
    w = b[..., 2] - b[..., 0]
    h = b[..., 3] - b[..., 1]
    nonzero = b.abs().sum(-1) > 0
    assert ((w * h)[nonzero] >= 1.0).all()
    dropped = (~nonzero) & (boxes.abs().sum(-1) > 0)
    assert dropped.any()


# ---------------------------------------------------------------------------------------
# DALI
# ---------------------------------------------------------------------------------------


@requires_dali
@pytest.mark.parametrize("level", LEVELS)
def test_dali_shapes_dtypes_and_variable_batch(level):
    aug = DaliAugment(level, SIZE, batch_size=8, device="cpu", seed=0)
    x = _uint8_batch(8)
    y = aug(x)
    assert y.shape == (8, 3, SIZE, SIZE) and y.dtype == torch.float32 and y.device == x.device
    assert 0.0 <= y.min() and y.max() <= 1.0
    y5 = aug(x[:5])  # last, smaller batch of an epoch
    assert y5.shape == (5, 3, SIZE, SIZE)
    if level == "S0":
        ref = x.permute(0, 3, 1, 2).float() / 255.0
        assert (y - ref).abs().max() < 1e-6
    with pytest.raises(ValueError, match="batch_size"):
        aug(_uint8_batch(9))


@requires_dali
@pytest.mark.parametrize("level", AUG_LEVELS)
def test_dali_seeded_determinism(level):
    x = _uint8_batch(8)
    a = DaliAugment(level, SIZE, batch_size=8, seed=11)
    b = DaliAugment(level, SIZE, batch_size=8, seed=11)
    c = DaliAugment(level, SIZE, batch_size=8, seed=12)
    ya = [a(x) for _ in range(2)]
    ya0 = ya[0].clone()
    yb = [b(x) for _ in range(2)]
    assert torch.equal(ya[0], ya0), "an output must stay valid after later calls"
    assert all(torch.equal(p, q) for p, q in zip(ya, yb))
    assert not torch.equal(ya[0], ya[1])
    assert not torch.equal(c(x), ya[0])


@requires_dali
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("top,left,size", [(0, 0, 32), (3, 5, 24), (8, 1, 16)])
def test_flip_crop_backends_agree(flip, top, left, size):
    x = _uint8_batch(4, seed=3)
    yk = flip_crop_kornia(x.permute(0, 3, 1, 2).float() / 255.0, flip, top, left, size)
    yd = flip_crop_dali(x, flip, top, left, size)
    assert yk.shape == yd.shape == (4, 3, size, size)
    assert (yk - yd).abs().max() < 1.0 / 255.0 + 1e-6
    # and the crop really is of the flipped image (flip first, then crop)
    ref = x.permute(0, 3, 1, 2).float() / 255.0
    if flip:
        ref = ref.flip(-1)
    assert torch.allclose(yk, ref[..., top:top + size, left:left + size])


# ---------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", INSTALLED_BACKENDS)
@pytest.mark.parametrize("level", ["S0", "S2", "S4"])
def test_make_augment(backend, level):
    aug = make_augment(backend, level, SIZE, 8, "cpu", 0)
    x = _uint8_batch(8)
    y = aug(x)
    assert y.shape == (8, 3, SIZE, SIZE) and y.dtype == torch.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    if level == "S0":
        assert (y - x.permute(0, 3, 1, 2).float() / 255.0).abs().max() < 1e-6
