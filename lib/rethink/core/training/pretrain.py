"""Upstream pre-training on the study's "ImageNet", the upstream classification world: supervised
(`pretrain`) and self-supervised (`selfsup_pretrain`, any method of training.selfsup)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.tasks import load_task_data, to_unit_nchw
from .checkpoints import new_model, save_checkpoint
from .config import TrainConfig
from .hardware import autocast, resolve_device, resolve_precision
from .loop import CHECK_EVERY, break_if_diverged, fit
from .probes import nearest_neighbour_accuracy
from .schedule import make_optimizer, make_scheduler, steps_per_epoch
from .selfsup import METHODS, check_options


def pretrain(world_dir: str, out: str, arch: str, width: int, norm: str, epochs: float, batch_size: int,
             lr: float, aug: str, aug_backend: str, device: str, seed: int = 0, precision: str = "auto") -> dict:
    """Supervised pre-training on upstream_classify_train; writes the checkpoint and its metrics (JSON beside it)."""
    cfg = TrainConfig(epochs_1x=epochs, batch_size=batch_size, lr=lr, aug=aug, aug_backend=aug_backend,
                      device=device, precision=precision, seed=seed, evals=2)
    device = resolve_device(device)
    train = load_task_data(Path(world_dir) / "upstream_classify_train.npz", "classify", device)
    val = load_task_data(Path(world_dir) / "upstream_classify_val.npz", "classify", device)
    model = new_model(train, arch, width, norm, seed)
    history = fit(model, train, val, cfg, desc=f"pretrain {arch}-{norm}")
    final = {r["metric"]: r["value"] for r in history if r["split"] == "val" and r["step"] == history[-1]["step"]}
    save_checkpoint(out, model, upstream_classes=list(train.classes), val=final, history=history)
    Path(out).with_suffix(".json").write_text(json.dumps({"val": final, "history": history}, indent=2) + "\n")
    return final


def selfsup_pretrain(method: str, world_dir: str, out: str, arch: str, width: int, norm: str, epochs: float,
                     batch_size: int, lr: float, device: str, seed: int = 0, precision: str = "auto",
                     lr_drops: tuple = (), **options) -> dict:
    """`method` on the upstream images, their labels unused; writes a checkpoint whose backbone any task
    can start from, and its metrics (JSON beside it: the loss per epoch, the 1-NN probe).

    Its own loop rather than train.fit with a loss hook: it has no targets, no batch augmentation (a
    method makes its own views), a second module's parameters to optimise and no periodic evaluation,
    which would take four hooks in fit. The pieces that must agree are shared: steps_per_epoch, the
    optimiser and the LR schedule."""
    check_options(method, options)  # before any data is read or anything trained
    device = resolve_device(device)
    train = load_task_data(Path(world_dir) / "upstream_classify_train.npz", "classify", device)
    val = load_task_data(Path(world_dir) / "upstream_classify_val.npz", "classify", device)
    torch.manual_seed(seed)  # the model, the heads, and every view and pretext draw follow from it
    model = new_model(train, arch, width, norm, seed).to(device)
    pretext = METHODS[method](model, train.images.shape[1], **options).to(device)
    cfg = TrainConfig(epochs_1x=epochs, batch_size=batch_size, lr=lr, device=device, seed=seed, precision=precision,
                      lr_drops=tuple(lr_drops))
    precision = resolve_precision(precision, device)
    params = list(model.parameters()) + list(pretext.parameters())
    optimizer = make_optimizer(params, cfg)
    epoch_steps = steps_per_epoch(len(train), batch_size)
    batch_size = min(batch_size, len(train))  # as fit does: at least one step per epoch
    total = max(1, round(epochs * epoch_steps))
    scheduler = make_scheduler(optimizer, cfg, total, total)
    order = torch.Generator().manual_seed(seed)
    history, step = [], 0
    model.train()
    with tqdm(total=total, desc=method) as bar:
        while step < total:
            losses, count = 0.0, 0  # summed on the device, read once an epoch
            epoch = torch.randperm(len(train), generator=order)[: epoch_steps * batch_size]
            for batch in epoch.view(-1, batch_size):
                x = to_unit_nchw(train.images[batch.to(train.images.device)]).to(device)
                with autocast(device, precision):
                    loss = pretext.loss(model, x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses, count, step = losses + loss.detach().float(), count + 1, step + 1
                bar.update(1)
                if step >= total or step % CHECK_EVERY == 0:
                    break_if_diverged(losses, method, step, step / epoch_steps, history, lr)
                if step >= total:
                    break
            break_if_diverged(losses, method, step, step / epoch_steps, history, lr)
            history.append(dict(step=step, epoch=step / epoch_steps, split="train", metric=f"{method}_loss",
                                value=float(losses) / count))
    final = {"loss": history[-1]["value"], "nn_accuracy": nearest_neighbour_accuracy(model, train, val)}
    save_checkpoint(out, model, val=final, history=history, selfsup=method, options=options)
    Path(out).with_suffix(".json").write_text(json.dumps({"val": final, "history": history}, indent=2) + "\n")
    return final
