"""Two probes of what a pre-trained backbone learned, neither of which trains it: the accuracy of a 1-nearest-
neighbour classifier on its features, and the invariance of its features to augmentation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tasks import TaskData
from ..models.nets import Net
from .pseudo import batched


@torch.no_grad()
def nearest_neighbour_accuracy(model, train: TaskData, val: TaskData, batch_size: int = 512) -> float:
    """1-NN (cosine) accuracy of the embeddings on `val` against `train`: a probe of the features
    that trains nothing."""
    model.eval()
    device = next(model.parameters()).device
    embed = lambda data: batched(lambda x: F.normalize(model.embed(x), dim=1), data.images, device, batch_size)
    nearest = (embed(val) @ embed(train).T).argmax(1)
    model.train()
    return (train.labels.to(device)[nearest] == val.labels.to(device)).float().mean().item()


@torch.no_grad()
def feature_invariance(model: Net, images_uint8_nhwc: torch.Tensor, views: nn.Module, generator_seed: int,
                       batch_size: int = 256) -> float:
    """How much closer an augmented view of an image lies to it than a view of another image does, in
    cosine similarity of the embeddings: (cos(f(x), f(t(x))) - cos(f(x), f(t(y)))) / (1 - cos(f(x), f(t(y)))),
    each averaged over the images, with y the next image. Both sides compare an image with a view, so a
    shift that augmentation gives every image alike (borders, contrast) cancels. 1: fully invariant; 0: a
    view of the image is no closer than a view of another. NaN when every embedding is the same (collapse)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    views = views.to(device)
    embed = lambda x: F.normalize(model.embed(x).float(), dim=1)
    # Reproducible view draws without disturbing the caller's random stream.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(generator_seed)
        f = batched(embed, images_uint8_nhwc, device, batch_size).double()
        g = batched(lambda x: embed(views(x)), images_uint8_nhwc, device, batch_size).double()
    model.train(was_training)
    augmented = (f * g).sum(1).mean()
    other = (f * g.roll(1, 0)).sum(1).mean()
    return ((augmented - other) / (1 - other)).item()
