"""Training algorithms by name, in one table (as USB registers its algorithms): a run names one in its
`method` setting and rethink.study.runs trains it. (Self-supervised pre-training, SimCLR among it, has a
table of its own: rethink.core.training.selfsup.)

  supervised      the labelled set alone
  noisy_student   Zoph et al. 2020 / Xie et al. 2020: the teacher (the supervised run of the same
                  settings) pseudo-labels the unlabeled pool; the student trains on labels and
                  pseudo-labels together, with strong augmentation and the normalised loss
                  (joint training: both losses in one run)
  sequential      the same pseudo-labels, used one after the other: first a run on the pseudo-labels
                  alone, then fine-tuning on the labels (self-training used like pre-training)
  joint           Zoph et al.'s joint training: the upstream labelled classification task trains in the same
                  run, on the shared backbone with a head of its own, its loss balanced as the pseudo-labels'
  joint_noisy_student  joint training and noisy-student self-training in one run (the paper's "additive" claim)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..data.tasks import TaskData
from .pseudo import LossNormaliser, check_threshold, check_weight, pseudo_label
from .registry import Registry
from .loop import Auxiliary, fit
from .config import TrainConfig
from .schedule import steps_per_epoch

ALGORITHMS = Registry("method")
NEEDS_TEACHER = ("noisy_student", "sequential", "joint_noisy_student")  # a teacher's pseudo-labels on the pool
NEEDS_UPSTREAM = ("joint", "joint_noisy_student")  # the upstream labelled set
algorithm = ALGORITHMS.register
check_method = ALGORITHMS.check


@dataclass(frozen=True)
class SelfTraining:
    """How a student uses its teacher (Zoph et al. 2020, Sec. 3.3)."""
    threshold: float = 0.5    # the teacher's confidence (class probability or box score) a pseudo-label needs
    soft: bool = True         # classification: the teacher's distribution as target (else one-hot)
    weight: float = 1.0       # alpha, the pseudo-label loss's weight
    normalise: bool = True    # rescale the pseudo loss by the ratio of the two losses' moving averages
    batch_size: int = 64      # pseudo-labelled images per step, beside the labelled batch
    rounds: int = 1           # teacher -> student iterations, each student the next round's teacher

    def __post_init__(self):
        check_threshold(self.threshold)
        check_weight(self.weight)
        if self.batch_size < 1:
            raise ValueError(f"pseudo_batch_size must be >= 1; got {self.batch_size}")
        if self.rounds < 1:
            raise ValueError(f"pseudo_rounds must be >= 1 (round 1's teacher is the supervised run); got {self.rounds}")


@algorithm("supervised")
def supervised(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, test: TaskData | None = None,
               **_) -> tuple[list, dict]:
    return fit(model, train, val, cfg, desc=desc, test=test), {}


def teacher_labels(teacher, pool: torch.Tensor, train: TaskData, cfg: TrainConfig, selftrain: SelfTraining):
    """The teacher's pseudo-labels on the pool, at the training precision, and how many it kept."""
    return pseudo_label(teacher, pool, train.task, train.classes, selftrain.threshold, selftrain.soft,
                        precision=cfg.precision)


def student(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, teacher, pool: torch.Tensor,
            selftrain: SelfTraining, auxiliary: Auxiliary | None = None) -> tuple[list, dict]:
    """A noisy student: labels and pseudo-labels in one run, the normalised loss (and `auxiliary`'s task)."""
    pseudo, info = teacher_labels(teacher, pool, train, cfg, selftrain)
    history = fit(model, train, val, cfg, desc=desc, pseudo=pseudo, pseudo_batch_size=selftrain.batch_size,
                  combine=LossNormaliser(selftrain.weight, selftrain.normalise), auxiliary=auxiliary)
    return history, info


@algorithm("noisy_student")
def noisy_student(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, teacher, pool: torch.Tensor,
                  selftrain: SelfTraining) -> tuple[list, dict]:
    return student(model, train, val, cfg, desc, teacher, pool, selftrain)


@algorithm("sequential")
def sequential(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, teacher, pool: torch.Tensor,
               selftrain: SelfTraining) -> tuple[list, dict]:
    pseudo, info = teacher_labels(teacher, pool, train, cfg, selftrain)
    # The pseudo-label phase gets as many steps as the fine-tuning phase (none if the teacher kept nothing).
    first = []
    if len(pseudo):
        epochs = cfg.epochs_1x * steps_per_epoch(len(train), cfg.batch_size) / steps_per_epoch(len(pseudo), cfg.batch_size)
        first = fit(model, pseudo, val, replace(cfg, epochs_1x=epochs), desc=f"{desc} (pseudo-labels)")
    offset = first[-1]["step"] if first else 0
    second = fit(model, train, val, cfg, desc=desc)
    return ([{**r, "split": f"pseudo_phase_{r['split']}"} for r in first]
            + [{**r, "step": r["step"] + offset} for r in second]), info


def upstream_task(model, upstream: TaskData, selftrain: SelfTraining) -> Auxiliary:
    """Joint training's second task: the upstream labelled classification, a linear head on the backbone's pooled
    features, `selftrain.batch_size` images a step, its loss joined as the pseudo-labels' is (LossNormaliser)."""
    head = torch.nn.Linear(model.backbone.channels[-1], len(upstream.classes))
    return Auxiliary(upstream, head, selftrain.batch_size, LossNormaliser(selftrain.weight, selftrain.normalise))


@algorithm("joint")
def joint(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, upstream: TaskData,
          selftrain: SelfTraining, **_) -> tuple[list, dict]:
    return fit(model, train, val, cfg, desc=desc, auxiliary=upstream_task(model, upstream, selftrain)), {}


@algorithm("joint_noisy_student")
def joint_noisy_student(model, train: TaskData, val: TaskData, cfg: TrainConfig, desc: str, teacher,
                        pool: torch.Tensor, upstream: TaskData, selftrain: SelfTraining) -> tuple[list, dict]:
    return student(model, train, val, cfg, desc, teacher, pool, selftrain, upstream_task(model, upstream, selftrain))
