"""How long a run trains and how its learning rate moves: He et al.'s step policy, warm-up, evaluations."""
from __future__ import annotations

import torch

from .config import TrainConfig


def steps_per_epoch(n: int, batch_size: int) -> int:
    """SGD steps in one epoch over n images: the ragged last batch is dropped (BatchNorm dislikes tiny
    batches), and a set smaller than a batch is one batch. Every schedule in the study counts with this."""
    return n // min(batch_size, n)


AFTER_DROP = 3  # evaluations the converged gate reads after the last LR drop, at least


def evaluation_steps(total: int, evals: int, drops: list[int]) -> list[int]:
    """`evals` evaluations spread evenly over the run and, if fewer than AFTER_DROP come after the last LR drop
    (He et al.'s drops sit near the end of a long schedule), AFTER_DROP more spread evenly over the stretch after
    it: the converged gate compares the evaluations after the last drop. Evaluating changes no training number."""
    steps = {max(1, round(total * (i + 1) / evals)) for i in range(evals)}
    last_drop = max(drops, default=0)
    stretch = total - last_drop
    if evals >= 2 and sum(s > last_drop for s in steps) < AFTER_DROP and stretch >= AFTER_DROP:
        steps |= {last_drop + round(stretch * k / AFTER_DROP) for k in range(1, AFTER_DROP + 1)}
    return sorted(steps)


def step_schedule(total_steps: int, steps_1x: int, lr_drops: tuple = ()) -> list[int]:
    """The steps at which the LR drops 10x. He et al.: for the last 2/3 and the last 2/9 of a 1x schedule (60k
    and 20k of 90k iterations), whatever the total length; `lr_drops`: at these shares of the run instead."""
    if lr_drops:
        drops = [round(total_steps * share) for share in lr_drops]
    else:
        drops = [total_steps - round(steps_1x * 2 / 3), total_steps - round(steps_1x * 2 / 9)]
    return sorted({min(max(d, 1), total_steps) for d in drops})


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with Nesterov momentum 0.9 at the config's peak learning rate and weight decay."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int, steps_1x: int):
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3, total_iters=max(cfg.warmup_steps, 1))
    steps = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=step_schedule(total_steps, steps_1x, cfg.lr_drops),
                                                 gamma=0.1)
    return torch.optim.lr_scheduler.ChainedScheduler([warmup, steps])
