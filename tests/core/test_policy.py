"""The grouped engine (rethink.core.augment.policy) against Kornia's own policies: each op's kernel gives what
Kornia's operation gives for the same parameters, and the ops and magnitudes it applies follow the
policy's distribution."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from rethink.core.augment.ladder import RANDAUGMENT_M, RANDAUGMENT_N
from rethink.core.augment.kornia import KorniaAugment
from rethink.core.augment.policy import GEOMETRIC, policy_table, randaugment_magnitude, warp

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


@pytest.mark.parametrize("kind", ["autoaugment", "randaugment"])
def test_each_op_matches_kornias_operation(kind):
    """The engine calls an op's kernel directly; Kornia's OperationBase.forward must agree on the same params."""
    torch.manual_seed(0)
    x = torch.rand(6, 3, SIZE, SIZE)
    seen = set()
    for op in (op for row in policy_table(kind) for op in row):
        name = type(op).__name__
        params = op.forward_parameters(x.shape)
        params["batch_prob"] = torch.ones(len(x))
        reference = op(x, params)
        if name in GEOMETRIC:
            mats = op.op.compute_transformation(x, params, op.op.flags)
            ours = warp(x, None, None, mats, op.op.flags["align_corners"])[0]
        else:
            ours = op.op.apply_transform(x, params, op.op.flags)
        assert torch.allclose(ours, reference, atol=1e-5), name
        seen.add(name)
    assert len(seen) >= 9


def _traced(level: str, images: int, calls: int):
    aug = KorniaAugment(level, SIZE, seed=0)
    aug.grouped.trace = []
    x = torch.rand(images, 3, SIZE, SIZE)
    for _ in range(calls):
        aug(x)
    return aug.grouped.trace, images * calls


def test_randaugment_draws_ops_uniformly_at_kornias_magnitude():
    trace, n = _traced("S4", 128, 8)
    table = policy_table("randaugment")
    for r in range(RANDAUGMENT_N):
        counts = Counter()
        for group in (g for g in trace if g["round"] == r):
            counts[group["op"]] += len(group["rows"])
            assert group["applied"].all(), "RandAugment applies every op it draws"
        assert sum(counts.values()) == n and len(counts) == len(table)
        expected = n / len(table)
        assert all(abs(c - expected) < 5 * expected ** 0.5 for c in counts.values()), counts
    # every draw of an op has the one magnitude m sets (test_randaugment_magnitude_is_kornias checks its value)
    for (op,) in table:
        name = type(op).__name__
        values = torch.cat([g["magnitude"] for g in trace if g["op"] == name and g["magnitude"] is not None] or
                           [torch.empty(0)])
        if op._factor_name is None:
            continue
        params = op.forward_parameters(torch.Size((64, 3, SIZE, SIZE)),
                                       mag=torch.full((64,), randaugment_magnitude(op, RANDAUGMENT_M, SIZE, SIZE)))
        assert torch.allclose(values.abs().unique(), params[op._factor_name].abs().unique()), name
        if op.symmetric_megnitude:
            assert 0.3 < (values > 0).float().mean() < 0.7, name


def test_randaugment_magnitude_is_kornias():
    from kornia.augmentation.auto import RandAugment
    from kornia.augmentation.auto.rand_augment.rand_augment import default_policy

    torch.manual_seed(0)
    for entry in default_policy:
        reference = RandAugment(n=1, m=RANDAUGMENT_M, policy=[entry])
        (item,) = reference.forward_parameters(torch.Size((4, 3, SIZE, 2 * SIZE)))
        factors = item.data[0].data
        (op,) = policy_table("randaugment")[default_policy.index(entry)]
        if op._factor_name is None:
            continue
        ours = randaugment_magnitude(op, RANDAUGMENT_M, SIZE, 2 * SIZE)
        mapped = op.forward_parameters(torch.Size((4, 3, SIZE, 2 * SIZE)), mag=torch.full((4,), ours))
        assert torch.allclose(mapped[op._factor_name].abs(), factors[op._factor_name].abs()), entry


def test_autoaugment_follows_the_imagenet_table():
    trace, n = _traced("S2", 128, 12)
    table = policy_table("autoaugment")
    for r in range(2):
        drawn = Counter()
        applied = Counter()
        for group in (g for g in trace if g["round"] == r):
            drawn[group["op"]] += len(group["rows"])
            applied[group["op"]] += int(group["applied"].sum())
        # expected share of each op name at round r: each sub-policy 1/25
        expected = Counter()
        expected_applied = Counter()
        for row in table:
            expected[type(row[r]).__name__] += n / len(table)
            expected_applied[type(row[r]).__name__] += n / len(table) * float(row[r].op.p)
        assert set(drawn) == set(expected)
        for name, e in expected.items():
            assert abs(drawn[name] - e) < 5 * e ** 0.5 + 1, (r, name, drawn[name], e)
            ea = expected_applied[name]
            assert abs(applied[name] - ea) < 5 * ea ** 0.5 + 1, (r, name, applied[name], ea)
    # magnitudes stay inside each op's bin (rotate: degrees; solarize: thresholds; posterize: bits)
    for group in trace:
        if group["op"] in ("Rotate", "Solarize", "Saturate", "Contrast") and group["magnitude"] is not None:
            low = min(float(op.magnitude_range[0]) for row in table for op in row if type(op).__name__ == group["op"])
            high = max(float(op.magnitude_range[1]) for row in table for op in row if type(op).__name__ == group["op"])
            assert ((group["magnitude"] >= low - 1e-6) & (group["magnitude"] <= high + 1e-6)).all(), group["op"]


def test_flip_and_scale_jitter_distribution():
    """Flip + scale jitter: about half the images flipped, and the zoom-out share matches s ~ U(0.5, 2.0)."""
    torch.manual_seed(0)
    x = torch.zeros(512, 3, SIZE, SIZE)
    x[:, :, :, : SIZE // 2] = 1.0  # left half bright: a flip moves it right
    masks = torch.ones(512, SIZE, SIZE, dtype=torch.long)
    y, m, _ = KorniaAugment("S3", SIZE, seed=1).grouped._flip_and_jitter(x, masks, None)
    left = y[:, 0, :, : SIZE // 2].mean((1, 2)) > y[:, 0, :, SIZE // 2:].mean((1, 2))
    assert 0.4 < left.float().mean() < 0.6
    zoomed_out = (m == 0).flatten(1).any(1).float().mean()  # s < 1 pads: P(s < 1) = 0.5 / 1.5
    assert abs(float(zoomed_out) - 1 / 3) < 0.08
