"""One training loop for every task: seeded, He et al.'s step LR policy with warm-up, batched augmentation
on the training device, tqdm progress, periodic evaluation, a diverged run stopped early."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.tasks import TaskData
from ..models.nets import Net
from .config import TrainConfig
from .hardware import resolve_device, resolve_precision, autocast
from .schedule import steps_per_epoch, evaluation_steps, step_schedule, make_optimizer, make_scheduler
from .batches import make_batch_augment, steps_per_call, epoch_batches, augmented_batches, side_batches
from .evaluation import SELECTED_BY, task_loss, evaluate


CHECK_EVERY = 25       # steps between host reads of the running loss, to stop a diverged run (NaN/inf) early


class Diverged(FloatingPointError):
    """The loss became NaN or infinite: carries the step and the history up to it (a diverged arm is a result)."""

    def __init__(self, message: str, step: int, epoch: float, history: list[dict]):
        super().__init__(message)
        self.step, self.epoch, self.history = step, epoch, history


def break_if_diverged(loss_sum: torch.Tensor, desc: str, step: int, epoch: float, history: list[dict],
                      lr: float) -> None:
    """Raise Diverged if a running loss sum is NaN or infinite (one host read)."""
    if not bool(torch.isfinite(loss_sum)):
        raise Diverged(f"{desc}: the loss became {float(loss_sum)} by step {step}; lower lr (now {lr})",
                       step, epoch, history)


@dataclass
class Auxiliary:
    """A second labelled classification task trained in the same run on the shared backbone (Zoph et al.'s joint
    training: the upstream task beside the downstream one): its data, its own head (fed the backbone's pooled
    features, model.embed), its images per step, and `combine(loss, auxiliary_loss)`."""
    data: TaskData
    head: torch.nn.Module
    batch_size: int
    combine: Callable


def fit(model: Net, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str = "train",
        pseudo: TaskData | None = None, pseudo_batch_size: int = 0, combine=None,
        auxiliary: Auxiliary | None = None, test: TaskData | None = None) -> list[dict]:
    """Train `model` in place; returns tidy history rows (step, epoch, split, metric, value).

    With `pseudo` (self-training's pseudo-labelled data), every step also draws `pseudo_batch_size`
    pseudo-labelled images, augmented alike, and `combine(human_loss, pseudo_loss)` gives the loss
    (rethink.pseudo.LossNormaliser). With `auxiliary` (joint training), every step also draws its batch, and
    `auxiliary.combine(loss, auxiliary_loss)` joins it; its head trains with the model and is dropped at the end.
    The schedule still counts epochs over the labelled set. With `test` (a held-out split), the model of the
    evaluation with the best validation score (SELECTED_BY; the earliest of ties) is kept and scored on it at the end
    (split 'test', at that evaluation's step): a model selected on validation, reported on data it never saw, at the
    cost of one pass over the test split (not one per evaluation)."""
    device = resolve_device(cfg.device)
    model.to(device).train()
    torch.manual_seed(cfg.seed)
    n = len(train)
    batch_size = min(cfg.batch_size, n)
    epoch_steps = steps_per_epoch(n, cfg.batch_size)
    batches = augmented_batches(train, make_batch_augment(train, cfg, device), epoch_batches(
        n, batch_size, epoch_steps, torch.Generator().manual_seed(cfg.seed)), steps_per_call(batch_size))
    if pseudo is not None and len(pseudo) and pseudo_batch_size:
        pseudo_batches = side_batches(pseudo, cfg, pseudo_batch_size, cfg.seed + 1, device)
    else:
        pseudo = None
    if auxiliary is not None:
        aux_batches = side_batches(auxiliary.data, cfg, auxiliary.batch_size, cfg.seed + 2, device)
        model.add_module("auxiliary_head", auxiliary.head.to(device))  # its parameters join the optimiser's
    model.frozen_stages(cfg.freeze)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    steps_1x = max(1, round(cfg.epochs_1x * epoch_steps))
    total = max(1, round(cfg.schedule * steps_1x))
    scheduler = make_scheduler(optimizer, cfg, total, steps_1x)
    eval_steps = evaluation_steps(total, cfg.evals, step_schedule(total, steps_1x, cfg.lr_drops))

    precision = resolve_precision(cfg.precision, device)
    # Losses add up on the device and are read once per evaluation (and every CHECK_EVERY steps, to stop a
    # diverged run early): no host synchronisation per step.
    history, running, running_pseudo, running_aux, seen = [], 0.0, 0.0, 0.0, 0
    best = None  # (validation score, step, epoch, weights) of the evaluation selected for the test split
    bar = tqdm(total=total, desc=desc, disable=not cfg.progress, leave=False)
    try:
        for step in range(1, total + 1):
            images, targets = next(batches)
            with autocast(device, precision):
                loss = task_loss(model, model(images.to(device)), targets, train.task)
            running = running + loss.detach()  # the curves show the labelled loss, with or without pseudo-labels
            if pseudo is not None:
                images, targets = next(pseudo_batches)
                with autocast(device, precision):
                    pseudo_loss = task_loss(model, model(images.to(device)), targets, pseudo.task)
                running_pseudo = running_pseudo + pseudo_loss.detach()
                loss = combine(loss, pseudo_loss)
            if auxiliary is not None:
                images, targets = next(aux_batches)
                with autocast(device, precision):
                    aux_loss = F.cross_entropy(model.auxiliary_head(model.embed(images.to(device))).float(), targets)
                running_aux = running_aux + aux_loss.detach()
                loss = auxiliary.combine(loss, aux_loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            lr_used = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            seen += 1
            bar.update(1)
            if step in eval_steps or step % CHECK_EVERY == 0:
                break_if_diverged(running + running_pseudo + running_aux, desc, step, step / epoch_steps, history, cfg.lr)
            if step in eval_steps:
                epoch = step / epoch_steps
                history.append(dict(step=step, epoch=epoch, split="train", metric="loss", value=float(running) / seen))
                if pseudo is not None:
                    history.append(dict(step=step, epoch=epoch, split="train", metric="pseudo_loss",
                                        value=float(running_pseudo) / seen))
                if auxiliary is not None:
                    history.append(dict(step=step, epoch=epoch, split="train", metric="auxiliary_loss",
                                        value=float(running_aux) / seen))
                # The LR of this step: the converged gate reads the evaluations after the last drop.
                history.append(dict(step=step, epoch=epoch, split="train", metric="lr", value=float(lr_used)))
                running, running_pseudo, running_aux, seen = 0.0, 0.0, 0.0, 0
                scores = evaluate(model, val, precision=precision)
                history += [dict(step=step, epoch=epoch, split="val", metric=m, value=v) for m, v in scores.items()]
                if test is not None and (best is None or scores[SELECTED_BY[val.task]] > best[0]):
                    best = (scores[SELECTED_BY[val.task]], step, epoch,
                            {k: v.detach().clone() for k, v in model.state_dict().items()})
                bar.set_postfix({r["metric"]: round(r["value"], 3) for r in history
                                 if r["step"] == step and r["split"] != "test"})
    finally:
        bar.close()
        if auxiliary is not None:
            del model.auxiliary_head  # the run's model (and its checkpoint, diverged or not) is the downstream one
        if best is not None:  # a diverged run too (Diverged carries this history): its selected model is scored
            history += selected_test_rows(model, best, test, precision)
    return history


def selected_test_rows(model: Net, best: tuple, test: TaskData, precision: str) -> list[dict]:
    """The test split's rows of the model selected on validation (`best`: score, step, epoch, weights); the run's
    model is left as it ended."""
    _, step, epoch, weights = best
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    rows = [dict(step=step, epoch=epoch, split="test", metric=m, value=v)
            for m, v in evaluate(model, test, precision=precision).items()]
    model.load_state_dict(final)
    return rows
