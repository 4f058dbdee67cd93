"""What a training run is told: TrainConfig, its checks, and the limits of freezing."""
from __future__ import annotations

from dataclasses import dataclass

from ..augment.ladder import check_backend, check_level
from .hardware import check_precision


@dataclass(frozen=True)
class TrainConfig:
    epochs_1x: float = 4.0     # length of the 1x schedule, in epochs over the training set
    schedule: float = 1.0      # multiple of the 1x schedule: He et al.'s 2x, 3x, ...
    batch_size: int = 128
    lr: float = 0.1            # peak learning rate (SGD, Nesterov momentum 0.9)
    weight_decay: float = 5e-4
    warmup_steps: int = 30     # linear warm-up from lr/1000
    grad_clip: float = 0.0     # max gradient norm, 0 = off (detectors clip: their box regression can spike)
    aug: str = "S1"            # augmentation level S0-S4
    aug_backend: str = "kornia"
    evals: int = 6             # validation evaluations spread evenly over the run (for curves)
    lr_drops: tuple = ()       # shares of the run at which the LR drops 10x; () = He et al.'s step policy
    freeze: int = 0            # backbone stages left frozen (the stem is one): 0 = fine-tune all, 4 = only the head
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"    # auto | fp32 | bf16: the compute dtype of the forward/backward (losses stay fp32)
    progress: bool = True

    def __post_init__(self):
        check_level(self.aug)
        check_backend(self.aug_backend)
        check_precision(self.precision)
        for key in ("epochs_1x", "schedule", "lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0; got {getattr(self, key)}")
        if self.batch_size < 1 or self.evals < 1 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("batch_size and evals must be >= 1, warmup_steps and grad_clip >= 0")
        object.__setattr__(self, "lr_drops", tuple(float(d) for d in self.lr_drops))  # YAML gives a list
        if not all(0 < d < 1 for d in self.lr_drops) or list(self.lr_drops) != sorted(self.lr_drops):
            raise ValueError(f"lr_drops must be increasing shares of the run, each in (0, 1); got {self.lr_drops!r}")
        if self.freeze not in range(FROZEN_STAGES_MAX + 1):
            raise ValueError(f"freeze must be 0 to {FROZEN_STAGES_MAX} (backbone stages frozen: 0 fine-tunes all, "
                             f"{FROZEN_STAGES_MAX} trains the head alone); got {self.freeze!r}")


FROZEN_STAGES_MAX = 4  # the stem and three stages


def check_task_aug(task: str, aug: str) -> None:
    """Pose is the object's angle: a geometric augmentation would change the answer, so it trains unaugmented."""
    if task == "pose" and aug != "S0":
        raise ValueError(f"task 'pose' trains with aug 'S0' only (flips, crops and rotations change the pose it "
                         f"predicts); got aug {aug!r}")
