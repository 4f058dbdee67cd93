"""Self-supervised pre-training on constructed inputs: the registry, each pretext's loss and transform,
Sinkhorn's codes, the invariance probe, and the pre-training loop end to end on a tiny world."""
import json
import math

import pytest
import torch
from torch import nn

from rethink.core.training import probes
from rethink.core.training import selfsup as S
from rethink.core.training import pretrain as P
from rethink.core.training.pretrain import selfsup_pretrain
from rethink.core.data import world as W
from rethink.core.models.nets import build_model
from rethink.core.data.tasks import load_task_data
from rethink.core.training.checkpoints import load_checkpoint, new_model

NAMES = ["simclr", "rotation", "autoencoder", "swav", "jigsaw"]


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(arch="resnet9", width=8, norm="gn", task="classify", num_classes=2)


@pytest.fixture(scope="module")
def upstream_world(tmp_path_factory):
    """64 small upstream images for training and 32 for validation, as the 'world' rule names them."""
    root = tmp_path_factory.mktemp("upstream")
    spec = W.WorldSpec(image_size=16, texture=0.2, color=0.2, viewpoint=0.2, lighting=0.2, clutter=0.2)
    W.save_world(root / "upstream_classify_train.npz", W.generate_classification(64, W.UPSTREAM_CLASSES[:4], spec, 1))
    W.save_world(root / "upstream_classify_val.npz", W.generate_classification(32, W.UPSTREAM_CLASSES[:4], spec, 2))
    return root


def test_the_registry_names_every_method_and_rejects_unknown_ones():
    assert list(S.METHODS) == NAMES
    assert all(issubclass(cls, S.SelfSupervised) for cls in S.METHODS.values())
    with pytest.raises(ValueError, match="selfsup method must be one of simclr, rotation, .*jigsaw; got 'byol'"):
        S.check_selfsup("byol")
    with pytest.raises(TypeError, match="'temprature'"):
        S.check_options("simclr", {"temprature": 0.5})
    with pytest.raises(TypeError, match=r"takes options \(none\); got 'prototypes'"):
        S.check_options("rotation", {"prototypes": 8})
    assert S.check_options("swav", {"prototypes": 8, "epsilon": 0.1}) == {"prototypes": 8, "epsilon": 0.1}
    with pytest.raises(TypeError, match="prototype"):
        S.METHODS["swav"](tiny_model(), 16, prototype=8)  # the constructor rejects it too
    with pytest.raises(ValueError, match="temperature must be > 0"):
        S.METHODS["simclr"](tiny_model(), 16, temperature=0)


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_is_a_finite_scalar_that_trains_backbone_and_heads(name):
    model = tiny_model()
    pretext = S.METHODS[name](model, 16)
    # The backbone is the caller's: the method's parameters are its heads alone.
    assert not {id(p) for p in pretext.parameters()} & {id(p) for p in model.parameters()}
    assert not any(k.startswith(("backbone", "model")) for k in pretext.state_dict())
    torch.manual_seed(1)
    loss = pretext.loss(model, torch.rand(8, 3, 16, 16))
    assert loss.shape == () and math.isfinite(loss.item())
    loss.backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0
    heads = [p for p in pretext.parameters() if p.requires_grad]
    assert heads and all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)


def test_sinkhorn_codes_are_distributions_with_equipartitioned_prototypes():
    torch.manual_seed(0)
    n, k = 64, 8
    scores = torch.randn(n, k).clamp(-1, 1)
    q = S.sinkhorn(scores, epsilon=0.05, iterations=3)
    assert q.shape == (n, k) and (q >= 0).all()
    assert torch.allclose(q.sum(1), torch.ones(n), atol=1e-5)  # each sample: one unit of assignment
    # Each prototype moves towards N/K samples: closer than the plain softmax's assignment.
    plain = (scores / 0.05).softmax(1)
    assert (q.sum(0) - n / k).abs().max() < 0.5 * (plain.sum(0) - n / k).abs().max()
    q = S.sinkhorn(torch.randn(n, k).clamp(-1, 1), epsilon=0.05, iterations=50)
    assert torch.allclose(q.sum(0), torch.full((k,), n / k), rtol=1e-3)
    # One dominant prototype per sample, balanced over the prototypes: the codes follow the scores.
    favourite = torch.arange(n) % k
    scores = torch.full((n, k), -1.0).scatter(1, favourite[:, None], 1.0) + 0.1 * torch.rand(n, k)
    codes = S.sinkhorn(scores, epsilon=0.01, iterations=3)
    assert (codes.argmax(1) == favourite).all() and codes.max(1).values.min() > 0.99


def test_sinkhorn_spreads_samples_that_all_prefer_one_prototype():
    # Equipartition: without it every sample would go to prototype 0 (SwAV's collapse).
    scores = torch.tensor([[1.0, 0.9, 0.8, 0.7]]).repeat(8, 1) + 0.01 * torch.arange(8.0)[:, None] * torch.arange(4.0)
    codes = S.sinkhorn(scores, epsilon=0.05, iterations=20)
    assert torch.allclose(codes.sum(0), torch.full((4,), 2.0), rtol=0.05)


def test_rotate_agrees_with_rot90_per_image():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(S.rotate(x, 1), torch.rot90(x, 1, (2, 3)))
    assert torch.equal(S.rotate(S.rotate(S.rotate(S.rotate(x, 1), 1), 1), 1), x)
    quarters = torch.tensor([0, 1, 2, 3])
    turned = S.rotate(x, quarters)
    for i, q in enumerate(quarters.tolist()):
        assert torch.equal(turned[i], torch.rot90(x[i], q, (1, 2)))
    assert torch.equal(S.rotate(turned, -quarters), x)  # -q is the inverse turn


def quadrants(n: int = 1, side: int = 8) -> torch.Tensor:
    """Images whose quadrants (0 1 / 2 3) are constant 0, 1, 2, 3."""
    x = torch.zeros(n, 3, side, side)
    h = side // 2
    for t, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        x[:, :, r * h:(r + 1) * h, c * h:(c + 1) * h] = t
    return x


def quadrant_values(x: torch.Tensor) -> list[list[int]]:
    h = x.shape[-1] // 2
    return [[int(x[i, 0, r * h, c * h]) for r in (0, 1) for c in (0, 1)] for i in range(len(x))]


def test_shuffle_tiles_moves_quadrants_where_the_permutation_says():
    assert len(S.PERMUTATIONS) == 24 and len({tuple(p) for p in S.PERMUTATIONS.tolist()}) == 24
    x = quadrants(24)
    identity = S.PERMUTATIONS.tolist().index([0, 1, 2, 3])
    assert torch.equal(S.shuffle_tiles(x, identity), x)
    shuffled = S.shuffle_tiles(x, torch.arange(24))
    assert quadrant_values(shuffled) == S.PERMUTATIONS.tolist()  # output quadrant i shows input quadrant p[i]
    assert (shuffled == shuffled[:, :, :1, :1]).sum() == 24 * 3 * 16  # whole tiles move, not pixels
    inverse = [S.PERMUTATIONS.tolist().index(p.argsort().tolist()) for p in S.PERMUTATIONS]
    y = torch.rand(24, 3, 16, 16)
    assert torch.equal(S.shuffle_tiles(S.shuffle_tiles(y, torch.arange(24)), torch.tensor(inverse)), y)
    with pytest.raises(ValueError, match="even"):
        S.shuffle_tiles(torch.rand(1, 3, 15, 15), 0)


def test_the_autoencoder_reconstructs_at_full_size_and_learns_one_batch(upstream_world):
    model = tiny_model()
    autoencoder = S.METHODS["autoencoder"](model, 16)
    images = W.load_world(upstream_world / "upstream_classify_train.npz")["images"][:8]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    y = autoencoder.reconstruct(model, x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert autoencoder.reconstruct(model, torch.rand(2, 3, 20, 20)).shape == (2, 3, 20, 20)  # not a multiple of 8
    optimizer = torch.optim.Adam([*model.parameters(), *autoencoder.parameters()], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = autoencoder.loss(model, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


class Noise(nn.Module):
    """A 'view' that keeps nothing of the image."""

    def forward(self, x):
        return torch.rand_like(x)


def test_feature_invariance_is_one_for_the_identity_and_near_zero_for_noise(upstream_world):
    images = torch.from_numpy(W.load_world(upstream_world / "upstream_classify_train.npz")["images"])
    model = tiny_model()
    assert probes.feature_invariance(model, images, nn.Identity(), 0) == pytest.approx(1.0, abs=1e-5)
    assert probes.feature_invariance(model, images, Noise(), 0) < 0.2
    views = S.simclr_views(16)
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    first = probes.feature_invariance(model, images, views, 3, batch_size=16)
    assert torch.rand(1) == before  # the caller's random stream is untouched
    assert probes.feature_invariance(model, images, views, 3, batch_size=16) == pytest.approx(first, abs=1e-9)
    assert probes.feature_invariance(model, images, views, 4, batch_size=16) != pytest.approx(first, abs=1e-6)
    assert model.training
    model.eval()
    probes.feature_invariance(model, images, views, 3)
    assert not model.training  # the mode it was given is restored


def pretrain(world, out, **overrides):
    settings = dict(arch="resnet9", width=8, norm="gn", epochs=1, batch_size=16, lr=0.05, device="cpu", seed=0)
    return selfsup_pretrain(world_dir=str(world), out=str(out), **{**settings, **overrides})


def test_selfsup_pretrain_writes_a_loadable_reproducible_checkpoint(upstream_world, tmp_path):
    final = pretrain(upstream_world, tmp_path / "rotation.pt", method="rotation")
    checkpoint = load_checkpoint(tmp_path / "rotation.pt")
    assert checkpoint["selfsup"] == "rotation" and checkpoint["options"] == {}
    data = load_task_data(upstream_world / "upstream_classify_train.npz", "classify")
    fresh = new_model(data, "resnet9", 8, "gn", seed=0).state_dict()  # where training started
    trained = checkpoint["state_dict"]
    assert set(trained) == set(fresh)  # the model alone: the pretext's heads are not part of it
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh if k.startswith("backbone."))
    metrics = json.loads((tmp_path / "rotation.json").read_text())
    assert metrics["val"] == final and 0 <= final["nn_accuracy"] <= 1 and math.isfinite(final["loss"])
    assert [r["metric"] for r in metrics["history"]] == ["rotation_loss"]
    assert metrics["history"][0]["step"] == 4  # 64 images in batches of 16
    again = pretrain(upstream_world, tmp_path / "again.pt", method="rotation")
    assert again == final  # the same seed, the same numbers on the CPU
    other = pretrain(upstream_world, tmp_path / "other.pt", method="rotation", seed=1)
    assert other["loss"] != final["loss"]


def test_selfsup_pretrain_passes_options_and_records_them(upstream_world, tmp_path):
    final = pretrain(upstream_world, tmp_path / "swav.pt", method="swav", prototypes=8, epochs=0.5)
    checkpoint = load_checkpoint(tmp_path / "swav.pt")
    assert checkpoint["selfsup"] == "swav" and checkpoint["options"] == {"prototypes": 8}
    assert checkpoint["history"][-1]["metric"] == "swav_loss" and checkpoint["history"][-1]["step"] == 2
    assert 0 <= final["nn_accuracy"] <= 1


def test_bad_method_or_option_fails_before_anything_is_read_or_written(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "load_task_data", lambda *a, **k: pytest.fail("read the data before checking"))
    with pytest.raises(ValueError, match="selfsup method must be one of"):
        pretrain(tmp_path, tmp_path / "out.pt", method="byol")
    with pytest.raises(TypeError, match="'prototypes'"):
        pretrain(tmp_path, tmp_path / "out.pt", method="simclr", prototypes=8)
    assert list(tmp_path.iterdir()) == []


def test_swav_freezes_its_prototypes_first_and_codes_against_a_queue():
    model = tiny_model()
    swav = S.METHODS["swav"](model, 16, prototypes=4, projection_dim=8, freeze_prototypes_steps=1, queue_size=8)
    optimizer = torch.optim.SGD([*model.parameters(), *swav.parameters()], lr=0.5)
    torch.manual_seed(0)
    weights = []
    for _ in range(3):
        loss = swav.loss(model, torch.rand(8, 3, 16, 16))
        weights.append(swav.prototypes.weight.detach().clone())
        optimizer.zero_grad()
        loss.backward()
        frozen = swav.prototypes.weight.grad is None or not swav.prototypes.weight.grad.abs().sum()
        assert frozen == (len(weights) == 1)  # no gradient reaches the prototypes in the first step only
        optimizer.step()
        assert math.isfinite(loss.item())
    assert sum(len(z) for z in swav.queue) >= 16  # 8 past projections per view join the codes from step 2
    with pytest.raises(ValueError, match="freeze_prototypes_steps and queue_size must be >= 0"):
        S.METHODS["swav"](model, 16, queue_size=-1)
