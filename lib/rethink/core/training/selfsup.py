"""Self-supervised pre-training methods by name, in one table (as selftrain.ALGORITHMS holds the
self-training ones); training.pretrain.selfsup_pretrain turns any of them into a checkpoint.

  simclr       contrastive: two augmented views of an image attract, other images repel
  rotation     handcrafted: which of four quarter turns was applied
  autoencoder  handcrafted: reconstruct the image from the last feature map
  swav         clustering: each view predicts the other view's balanced cluster assignment
  jigsaw       handcrafted: which of the 24 orders the four quadrants were shuffled into

A method is an nn.Module built as `Cls(model, image_size, **options)`. It owns its heads only: the
backbone is passed to `loss` at each call, so that the method's parameters and state_dict never
count the backbone a second time. It also says what the rest of the study asks of it: its name in words, its
family in the overview's taxonomy, its colour in the figures, and its pretext loss at chance (the pre-training
gate's yardstick), from its options; its options' defaults are its constructor's.
"""
from __future__ import annotations

import inspect
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.nets import Net
from .registry import Registry

METHODS = Registry("selfsup method")
method = METHODS.register
check_selfsup = METHODS.check


def default_options(name: str) -> dict:
    """A method's options with their defaults, from its constructor."""
    parameters = list(inspect.signature(METHODS[check_selfsup(name)]).parameters.values())[2:]
    return {p.name: p.default for p in parameters}


def chance_loss(name: str, options: dict, batch_size: int) -> float | None:
    """A method's pretext loss at chance for its options (defaults filled in) and pre-training batch size."""
    return METHODS[check_selfsup(name)].chance_loss({**default_options(name), **options}, batch_size)


def check_options(name: str, options: dict) -> dict:
    """Unknown option names are a TypeError naming them, found without building anything."""
    allowed = list(inspect.signature(METHODS[check_selfsup(name)]).parameters)[2:]  # after model, image_size
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"selfsup method {name!r} takes options {', '.join(allowed) or '(none)'}; "
                        f"got {', '.join(map(repr, unknown))}")
    return options


def features(model: Net, x: torch.Tensor) -> list[torch.Tensor]:
    """The backbone's pyramid for x in [0, 1], centred as Net.forward centres it."""
    return model.backbone((x - 0.5) / 0.25)


def projection_head(channels: int, projection_dim: int, batch_norm: bool = False) -> nn.Sequential:
    """Linear -> (BatchNorm ->) ReLU -> Linear: SimCLR's head, and with BatchNorm SwAV's."""
    norm = [nn.BatchNorm1d(channels)] if batch_norm else []
    return nn.Sequential(nn.Linear(channels, channels), *norm, nn.ReLU(), nn.Linear(channels, projection_dim))


def simclr_views(image_size: int) -> nn.Module:
    """SimCLR's view augmentation, from Kornia: random resized crop, flip, colour jitter, greyscale."""
    import kornia.augmentation as K
    return K.AugmentationSequential(
        K.RandomResizedCrop((image_size, image_size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2))


class SelfSupervised(nn.Module):
    """A pretext task: `loss(model, x)` for a float NCHW batch in [0, 1], un-augmented."""

    display_name = "a method"
    family = "handcrafted"  # the overview's taxonomy: handcrafted, contrastive, clustering
    colour = "black"        # in the figures

    @classmethod
    def chance_loss(cls, options: dict, batch_size: int) -> float | None:
        """The pretext loss of a network that has learned nothing (None: no such value, a reconstruction's)."""
        return None

    def loss(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _positive(**values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"selfsup option {key} must be > 0; got {value}")


# ---------------------------------------------------------------------------------------------
# SimCLR (Chen et al. 2020). The loss is written by hand: it is a dozen lines, and no pinned
# dependency ships it.

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each view's positive is the other view of its image, its negatives the 2N - 2 other views."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = (z @ z.T / temperature).masked_fill(self_pairs, -math.inf)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, positives)


@method("simclr")
class SimCLR(SelfSupervised):
    # Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations.
    display_name, family, colour = "SimCLR", "contrastive", "tab:brown"

    @classmethod
    def chance_loss(cls, options: dict, batch_size: int) -> float:
        return math.log(2 * batch_size - 1)  # each view's positive among the 2B - 1 others

    def __init__(self, model: Net, image_size: int, temperature: float = 0.2, projection_dim: int = 64):
        super().__init__()
        _positive(temperature=temperature, projection_dim=projection_dim)
        self.temperature = temperature
        self.views = simclr_views(image_size)
        self.projection = projection_head(model.backbone.channels[-1], projection_dim)

    def loss(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        z1, z2 = (self.projection(model.embed(self.views(x))) for _ in range(2))
        return nt_xent(z1, z2, self.temperature)


# ---------------------------------------------------------------------------------------------
# Rotation prediction (Gidaris et al. 2018).

def rotate(x: torch.Tensor, quarters: torch.Tensor | int) -> torch.Tensor:
    """Each square image of x (NCHW) turned counter-clockwise by its own number of quarter turns."""
    quarters = torch.as_tensor(quarters, device=x.device).expand(len(x)) % 4
    out = x.clone()
    for q in (1, 2, 3):
        turned = quarters == q
        out[turned] = torch.rot90(x[turned], q, (2, 3))
    return out


@method("rotation")
class Rotation(SelfSupervised):
    display_name, colour = "rotation", "tab:green"

    @classmethod
    def chance_loss(cls, options: dict, batch_size: int) -> float:
        return math.log(4)

    # Gidaris et al. 2018, Unsupervised Representation Learning by Predicting Image Rotations.
    def __init__(self, model: Net, image_size: int):
        super().__init__()
        self.head = nn.Linear(model.backbone.channels[-1], 4)

    def loss(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        # One random turn per image from torch's global RNG, which the training loop seeds.
        quarters = torch.randint(4, (len(x),), device=x.device)
        return F.cross_entropy(self.head(model.embed(rotate(x, quarters))).float(), quarters)


# ---------------------------------------------------------------------------------------------
# Autoencoder: reconstruction as the pretext (the handcrafted family that Newell & Deng 2020 compare).

def _upsample(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                         nn.ReLU(inplace=True))


@method("autoencoder")
class Autoencoder(SelfSupervised):
    display_name, colour = "autoencoder", "tab:gray"
    # Newell & Deng 2020, How Useful is Self-Supervised Pretraining for Visual Tasks? (their VAE family).
    def __init__(self, model: Net, image_size: int):
        super().__init__()
        c = model.backbone.channels[-1]
        # Three doublings undo the backbone's stride 8; the channels halve on the way up.
        self.decoder = nn.Sequential(_upsample(c, c // 2), _upsample(c // 2, c // 4), _upsample(c // 4, c // 4),
                                     nn.Conv2d(c // 4, 3, 3, padding=1), nn.Sigmoid())

    def reconstruct(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        y = self.decoder(features(model, x)[-1])
        # Sides that are no multiple of 8 lose pixels on the way down: stretch back to the input's size.
        return y if y.shape[-2:] == x.shape[-2:] else F.interpolate(y, size=x.shape[-2:], mode="bilinear")

    def loss(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.reconstruct(model, x).float(), x.float())


# ---------------------------------------------------------------------------------------------
# SwAV (Caron et al. 2020).

@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Sinkhorn-Knopp codes for scores [N, K]: each row a distribution over the K prototypes (summing
    to 1), each prototype given about N/K samples in all (SwAV's equipartition). Written by hand: it is
    ten lines, and no pinned dependency ships it."""
    # The shift by the maximum keeps exp finite at small epsilon; the normalisations cancel it.
    q = torch.exp((scores.float() - scores.max()) / epsilon).T  # [K, N]
    k, n = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True) * k  # each prototype's total: 1/K
        q /= q.sum(dim=0, keepdim=True) * n  # each sample's total: 1/N
    return (q * n).T


@method("swav")
class SwAV(SelfSupervised):
    display_name, family, colour = "SwAV", "clustering", "tab:cyan"

    @classmethod
    def chance_loss(cls, options: dict, batch_size: int) -> float:
        return math.log(options["prototypes"])

    # Caron et al. 2020, Unsupervised Learning of Visual Features by Contrasting Cluster Assignments. As their
    # reference recipe does: the projection head has BatchNorm, the prototypes stay frozen for the first
    # `freeze_prototypes_steps` steps, and with small batches a queue of the last `queue_size` projections joins
    # the batch when the codes are computed (equipartition over a few hundred samples is too tight a constraint).
    def __init__(self, model: Net, image_size: int, prototypes: int = 32, temperature: float = 0.1,
                 epsilon: float = 0.05, sinkhorn_iterations: int = 3, projection_dim: int = 64,
                 freeze_prototypes_steps: int = 0, queue_size: int = 0):
        super().__init__()
        _positive(prototypes=prototypes, temperature=temperature, epsilon=epsilon,
                  sinkhorn_iterations=sinkhorn_iterations, projection_dim=projection_dim)
        if freeze_prototypes_steps < 0 or queue_size < 0:
            raise ValueError(f"selfsup options freeze_prototypes_steps and queue_size must be >= 0; got "
                             f"{freeze_prototypes_steps} and {queue_size}")
        self.temperature, self.epsilon, self.iterations = temperature, epsilon, sinkhorn_iterations
        self.freeze_steps, self.queue_size, self.steps = freeze_prototypes_steps, queue_size, 0
        self.views = simclr_views(image_size)
        self.projection = projection_head(model.backbone.channels[-1], projection_dim, batch_norm=True)
        self.prototypes = nn.Linear(projection_dim, prototypes, bias=False)
        self.queue: list[torch.Tensor] = []  # the two views' past projections, newest last (not saved)

    def codes(self, scores: torch.Tensor, queued: torch.Tensor | None) -> torch.Tensor:
        """Sinkhorn codes of the batch's scores, the queue's scores (if any) taking part in the equipartition."""
        if queued is None:
            return sinkhorn(scores, self.epsilon, self.iterations)
        return sinkhorn(torch.cat([scores, queued]), self.epsilon, self.iterations)[: len(scores)]

    def loss(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # prototypes stay on the unit sphere, as the projections are
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        frozen = self.steps < self.freeze_steps
        weight = self.prototypes.weight.detach() if frozen else self.prototypes.weight
        self.steps += 1
        z1, z2 = (F.normalize(self.projection(model.embed(self.views(x))).float(), dim=1) for _ in range(2))
        with torch.autocast(z1.device.type, enabled=False):  # Sinkhorn's exp(score / epsilon) needs fp32 scores
            s1, s2 = F.linear(z1, weight.float()), F.linear(z2, weight.float())
        full = self.queue_size and sum(len(q) for q in self.queue) >= 2 * self.queue_size
        with torch.no_grad():
            queued = [torch.cat(self.queue[i::2])[-self.queue_size:] @ weight.float().T if full else None
                      for i in (0, 1)]
            q1, q2 = self.codes(s1.detach(), queued[0]), self.codes(s2.detach(), queued[1])
        if self.queue_size:
            self.queue = (self.queue + [z1.detach(), z2.detach()])[-2 * (self.queue_size // len(x) + 1):]
        # Swapped prediction: each view's scores predict the other view's codes.
        log_p1, log_p2 = F.log_softmax(s1 / self.temperature, 1), F.log_softmax(s2 / self.temperature, 1)
        return -((q1 * log_p2).sum(1) + (q2 * log_p1).sum(1)).mean() / 2


# ---------------------------------------------------------------------------------------------
# Jigsaw (Noroozi & Favaro 2016), on a 2x2 grid: all 24 orders of the four quadrants.

PERMUTATIONS = torch.tensor(list(itertools.permutations(range(4))))  # [24, 4]


def shuffle_tiles(x: torch.Tensor, perm_index: torch.Tensor | int) -> torch.Tensor:
    """x (NCHW, even sides) with its quadrants (0 1 / 2 3) reordered: output quadrant i shows input
    quadrant PERMUTATIONS[perm_index][i], each image by its own permutation."""
    n, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"jigsaw needs images with even sides; got {h}x{w}")
    order = PERMUTATIONS.to(x.device)[torch.as_tensor(perm_index, device=x.device).expand(n)]  # [N, 4]
    tiles = x.view(n, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(n, 4, c, h // 2, w // 2)
    tiles = tiles[torch.arange(n, device=x.device)[:, None], order]
    return tiles.view(n, 2, 2, c, h // 2, w // 2).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


@method("jigsaw")
class Jigsaw(SelfSupervised):
    display_name, colour = "jigsaw", "tab:pink"

    @classmethod
    def chance_loss(cls, options: dict, batch_size: int) -> float:
        return math.log(24)

    # Noroozi & Favaro 2016, Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles.
    def __init__(self, model: Net, image_size: int):
        super().__init__()
        if image_size % 2:
            raise ValueError(f"jigsaw needs an even image size; got {image_size}")
        self.head = nn.Linear(model.backbone.channels[-1], len(PERMUTATIONS))

    def loss(self, model: Net, x: torch.Tensor) -> torch.Tensor:
        order = torch.randint(len(PERMUTATIONS), (len(x),), device=x.device)
        return F.cross_entropy(self.head(model.embed(shuffle_tiles(x, order))).float(), order)


# ---------------------------------------------------------------------------------------------
