"""Training algorithms by name, in one table (as USB registers its algorithms): a run names one in its
`method` setting and rethink.study trains it. And SimCLR, the self-supervised pre-training that a
Snakemake rule of its own turns into a checkpoint.

  supervised      the labelled set alone
  noisy_student   Zoph et al. 2020 / Xie et al. 2020: the teacher (the supervised run of the same
                  settings) pseudo-labels the unlabeled pool; the student trains on labels and
                  pseudo-labels together, with strong augmentation and the normalised loss
                  (joint training: both losses in one run)
  sequential      the same pseudo-labels, used one after the other: first a run on the pseudo-labels
                  alone, then fine-tuning on the labels (self-training used like pre-training)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import TaskData, load_task_data
from .pseudo import LossNormaliser, batched, check_threshold, check_weight, pseudo_label
from .train import TrainConfig, autocast, fit, make_scheduler, new_model, resolve_device, save_checkpoint

ALGORITHMS: dict[str, Callable] = {}


def algorithm(name: str):
    def register(fn):
        ALGORITHMS[name] = fn
        return fn
    return register


def check_method(method: str) -> str:
    if method not in ALGORITHMS:
        raise ValueError(f"method must be one of {', '.join(ALGORITHMS)}; got {method!r}")
    return method


@dataclass(frozen=True)
class SelfTraining:
    """How a student uses its teacher (Zoph et al. 2020, Sec. 3.3)."""
    threshold: float = 0.5    # the teacher's confidence (class probability or box score) a pseudo-label needs
    soft: bool = True         # classification: the teacher's distribution as target (else one-hot)
    weight: float = 1.0       # alpha, the pseudo-label loss's weight
    normalise: bool = True    # rescale the pseudo loss by the ratio of the two losses' moving averages
    batch_size: int = 64      # pseudo-labelled images per step, beside the labelled batch

    def __post_init__(self):
        check_threshold(self.threshold)
        check_weight(self.weight)
        if self.batch_size < 1:
            raise ValueError(f"pseudo_batch_size must be >= 1; got {self.batch_size}")


@algorithm("supervised")
def supervised(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, **_) -> tuple[list, dict]:
    return fit(model, train, val, cfg, desc=desc), {}


@algorithm("noisy_student")
def noisy_student(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, teacher, pool: torch.Tensor,
                  selftrain: SelfTraining) -> tuple[list, dict]:
    pseudo, info = pseudo_label(teacher, pool, train.task, train.classes, selftrain.threshold, selftrain.soft)
    history = fit(model, train, val, cfg, desc=desc, pseudo=pseudo, pseudo_batch_size=selftrain.batch_size,
                  combine=LossNormaliser(selftrain.weight, selftrain.normalise))
    return history, info


@algorithm("sequential")
def sequential(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, teacher, pool: torch.Tensor,
               selftrain: SelfTraining) -> tuple[list, dict]:
    pseudo, info = pseudo_label(teacher, pool, train.task, train.classes, selftrain.threshold, selftrain.soft)
    # The pseudo-label phase gets as many steps as the fine-tuning phase (none if the teacher kept nothing).
    steps = lambda n: n // min(cfg.batch_size, n)
    first = fit(model, pseudo, val, replace(cfg, epochs_1x=cfg.epochs_1x * steps(len(train)) / steps(len(pseudo))),
                desc=f"{desc} (pseudo-labels)") if len(pseudo) else []
    offset = first[-1]["step"] if first else 0
    second = fit(model, train, val, cfg, desc=desc)
    return ([{**r, "split": f"pseudo_phase_{r['split']}"} for r in first]
            + [{**r, "step": r["step"] + offset} for r in second]), info


# ---------------------------------------------------------------------------------------------
# SimCLR (Chen et al. 2020): two augmented views of each image, the NT-Xent loss. Written by hand:
# the loss is a dozen lines, and no pinned dependency ships it.

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each view's positive is the other view of its image, its negatives the 2N - 2 other views."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = (z @ z.T / temperature).masked_fill(self_pairs, -math.inf)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, positives)


def simclr_views(image_size: int) -> nn.Module:
    """SimCLR's view augmentation, from Kornia: random resized crop, flip, colour jitter, greyscale."""
    import kornia.augmentation as K
    return K.AugmentationSequential(
        K.RandomResizedCrop((image_size, image_size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2))


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


def simclr_pretrain(world_dir: str, out: str, arch: str, width: int, norm: str, epochs: float, batch_size: int,
                    lr: float, temperature: float, projection_dim: int, device: str, seed: int = 0) -> dict:
    """SimCLR on the upstream images, their labels unused; writes a checkpoint whose backbone any task
    can start from, and its metrics (JSON beside it: the loss per epoch, the 1-NN probe)."""
    device = resolve_device(device)
    train = load_task_data(Path(world_dir) / "upstream_classify_train.npz", "classify", device)
    val = load_task_data(Path(world_dir) / "upstream_classify_val.npz", "classify", device)
    model = new_model(train, arch, width, norm, seed).to(device)
    width_out = model.backbone.channels[-1]
    projection = nn.Sequential(nn.Linear(width_out, width_out), nn.ReLU(), nn.Linear(width_out, projection_dim)).to(device)
    views = simclr_views(train.images.shape[1]).to(device)
    params = list(model.parameters()) + list(projection.parameters())
    cfg = TrainConfig(epochs_1x=epochs, batch_size=batch_size, lr=lr, device=device, seed=seed)
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train) // batch_size
    total = max(1, round(epochs * steps_per_epoch))
    scheduler = make_scheduler(optimizer, cfg, total, total)
    order = torch.Generator().manual_seed(seed)
    history, step = [], 0
    model.train()
    with tqdm(total=total, desc="simclr") as bar:
        while step < total:
            losses = []
            for batch in torch.randperm(len(train), generator=order)[: steps_per_epoch * batch_size].view(-1, batch_size):
                x = train.images[batch.to(train.images.device)].permute(0, 3, 1, 2).float().div(255).to(device)
                with autocast(device):
                    loss = nt_xent(projection(model.embed(views(x))), projection(model.embed(views(x))), temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                step += 1
                bar.update(1)
                if step >= total:
                    break
            history.append(dict(step=step, epoch=step / steps_per_epoch, split="train", metric="nt_xent",
                                value=sum(losses) / len(losses)))
    final = {"nn_accuracy": nearest_neighbour_accuracy(model, train, val), "nt_xent": history[-1]["value"]}
    save_checkpoint(out, model, val=final, history=history)
    Path(out).with_suffix(".json").write_text(json.dumps({"val": final, "history": history}, indent=2) + "\n")
    return final
