"""One training loop for every task: seeded, He et al.'s step LR policy with warm-up, batched
augmentation on the training device, tqdm progress, periodic evaluation and checkpoints."""
from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass, asdict, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm  # plain text bars: they go to the rules' logs

from . import detection, metrics
from .augment import KorniaAugment, check_backend, check_level, make_augment
from .cachefiles import rebuild_command
from .data import TaskData, to_unit_nchw
from .models import Net, build_model

CHECKPOINT_FORMAT = "rethink-checkpoint-v1"


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
CHECK_EVERY = 25       # steps between host reads of the running loss, to stop a diverged run (NaN/inf) early
POSE_TOLERANCE = 0.1   # pose accuracy: the predicted angle within this share of the shape's symmetry period


def check_task_aug(task: str, aug: str) -> None:
    """Pose is the object's angle: a geometric augmentation would change the answer, so it trains unaugmented."""
    if task == "pose" and aug != "S0":
        raise ValueError(f"task 'pose' trains with aug 'S0' only (flips, crops and rotations change the pose it "
                         f"predicts); got aug {aug!r}")


def nvidia_devices() -> list[str]:
    """Evidence of NVIDIA GPUs that does not ask torch: the driver's device files (Linux)."""
    return sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))


def resolve_device(device: str) -> str:
    """'auto' takes CUDA when present: the same code runs on both. When GPUs exist but torch cannot use them
    (a driver older than the CUDA of torch's wheel, or a CPU-only torch), it says so before falling back."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if nvidia_devices():
            build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            warnings.warn(f"device 'auto': NVIDIA GPUs are present ({', '.join(nvidia_devices())}) but torch "
                          f"{torch.__version__} ({build}) cannot use them, most often because the NVIDIA driver is older "
                          f"than that CUDA needs (nvidia-smi shows the driver's CUDA). Update the driver, or install the "
                          f"torch wheel of your driver's CUDA; running on the CPU now.", RuntimeWarning, stacklevel=2)
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")
    return device


PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16, read from /proc/cpuinfo (Linux); elsewhere False, and 'auto' stays fp32."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """'auto' is bf16 on CUDA and on CPUs with fast bf16 (cpu_has_fast_bf16), fp32 otherwise."""
    if check_precision(precision) != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cuda" or cpu_has_fast_bf16() else "fp32"


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


# ---------------------------------------------------------------------------------------------
# Tasks: what a batch's targets are, how they are augmented with the image, the loss, the metric.

def batch_targets(data: TaskData, index: torch.Tensor):
    if data.task == "classify":
        return data.labels[index]
    if data.task == "segment":
        return data.semantic[index]
    if data.task == "pose":
        return data.pose[index]
    return data.boxes[index], data.labels[index]


def make_batch_augment(data: TaskData, cfg: TrainConfig, device: str):
    """uint8 NHWC images + targets -> float NCHW images in [0, 1] + targets, augmented together."""
    size = data.images.shape[1]
    check_task_aug(data.task, cfg.aug)
    if data.task in ("classify", "pose"):
        # DALI's pipeline is built for the largest call: augmented_batches' ~AUG_IMAGES images, or one batch
        augment = make_augment(cfg.aug_backend, cfg.aug, size, max(AUG_IMAGES, cfg.batch_size), device, cfg.seed)
        return lambda images, targets: (augment(images), targets)
    if cfg.aug_backend != "kornia":
        raise ValueError(f"aug_backend {cfg.aug_backend!r} supports task 'classify' only; "
                         f"use aug_backend 'kornia' for task {data.task!r}")
    augment = KorniaAugment(cfg.aug, size, seed=cfg.seed).to(device)

    def apply(images, targets):
        x = to_unit_nchw(images)
        if data.task == "segment":
            x, _, masks = augment(x, masks=targets)
            return x, masks.long()
        boxes, labels = targets
        x, boxes, _ = augment(x, boxes=boxes)
        labels = labels.masked_fill((boxes[..., 2] - boxes[..., 0]) < 1, -1)  # boxes cropped away
        return x, (boxes, labels)

    return apply


AUG_IMAGES = 512  # images per augmentation call: Kornia's and DALI's per-call cost, paid once for several steps


def steps_per_call(batch_size: int) -> int:
    """Steps whose batches are augmented together (each image still draws its own ops): about AUG_IMAGES images."""
    return max(1, AUG_IMAGES // batch_size)


def epoch_batches(n: int, batch_size: int, epoch_steps: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches, epoch after epoch: a fresh permutation each epoch, the ragged end dropped."""
    while True:
        yield from torch.randperm(n, generator=rng)[: epoch_steps * batch_size].view(-1, batch_size)


def random_batches(n: int, batch_size: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield torch.randint(n, (batch_size,), generator=rng)


def augmented_batches(data: TaskData, augment, batches: Iterator[torch.Tensor], per_call: int):
    """(images, targets) per step: `per_call` steps' index batches augmented in one call, then split."""
    while True:
        chunk = list(itertools.islice(batches, per_call))
        index = torch.cat(chunk).to(data.images.device)
        images, targets = augment(data.images[index], batch_targets(data, index))
        sizes = [len(b) for b in chunk]
        parts = zip(*(t.split(sizes) for t in targets)) if isinstance(targets, tuple) else targets.split(sizes)
        yield from zip(images.split(sizes), parts)


def side_batches(data: TaskData, cfg: TrainConfig, batch_size: int, seed: int, device: str):
    """A second set's batches beside the labelled one (pseudo-labels, joint training's upstream task): drawn at
    random each step, with an augmentation stream of their own (the labelled batch's draws would correlate them)."""
    augment = make_batch_augment(data, replace(cfg, seed=seed, batch_size=batch_size), device)
    return augmented_batches(data, augment, random_batches(len(data), batch_size, torch.Generator().manual_seed(seed)),
                             steps_per_call(batch_size))


def task_loss(model: Net, outputs, targets, task: str) -> torch.Tensor:
    if task == "classify":
        return F.cross_entropy(outputs.float(), targets)
    if task == "segment":
        return F.cross_entropy(outputs.float(), targets.long())
    if task == "pose":
        return F.mse_loss(outputs.float(), targets)
    return detection.detection_loss(outputs, *targets, stride=model.head.stride)


@torch.inference_mode()
def evaluate(model: Net, data: TaskData, batch_size: int = 256, precision: str = "fp32") -> dict[str, float]:
    """Validation metrics: loss plus accuracy (classify), mIoU (segment), pose accuracy (pose: the angle within
    POSE_TOLERANCE of the symmetry period) or COCO AP/AP50/AP75 (detect), computed in fp32 from the model's
    outputs at the training `precision`. Loss and accuracy sums stay on the device until the end."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, confusion, results = 0.0, 0, 0, []
    n = len(data)
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n), device=data.images.device)
        images = to_unit_nchw(data.images[index]).to(device)
        targets = batch_targets(data, index)
        with autocast(device, precision):
            outputs = model(images)
        loss_sum = loss_sum + task_loss(model, outputs, targets, data.task) * len(index)
        if data.task == "classify":
            correct = correct + (outputs.argmax(1) == targets).sum()
        elif data.task == "pose":
            error = torch.atan2(outputs[:, 1].float(), outputs[:, 0].float()) - torch.atan2(targets[:, 1], targets[:, 0])
            error = torch.remainder(error + math.pi, 2 * math.pi) - math.pi  # around the circle
            correct = correct + (error.abs() <= 2 * math.pi * POSE_TOLERANCE).sum()
        elif data.task == "segment":
            confusion = confusion + metrics.confusion_matrix(outputs.argmax(1), targets, model.cfg.num_classes + 1)
        else:
            boxes, scores, classes = detection.decode(outputs, model.head.stride)
            results += detection.to_coco_results(boxes, scores, classes, (index + 1).tolist(), data.images.shape[1])
    model.train()
    out = {"loss": float(loss_sum) / n}
    if data.task == "classify":
        out["accuracy"] = int(correct) / n
    elif data.task == "pose":
        out["pose_accuracy"] = int(correct) / n
    elif data.task == "segment":
        out["miou"] = metrics.mean_iou(confusion)
    else:
        out.update(metrics.coco_box_ap(data.coco, results))
    return out


def autocast(device, precision: str = "fp32") -> torch.autocast:
    """bf16 autocast (the papers train with mixed precision) when `precision` resolves to bf16, else fp32."""
    kind = torch.device(device).type
    return torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16")


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
    The schedule still counts epochs over the labelled set. With `test` (a held-out split), every evaluation also
    scores it (split 'test'), so that a model selected by its validation score is reported on data it never saw."""
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
                for split, data in (("val", val), ("test", test)):
                    scores = evaluate(model, data, precision=precision) if data is not None else {}
                    history += [dict(step=step, epoch=epoch, split=split, metric=m, value=v) for m, v in scores.items()]
                bar.set_postfix({r["metric"]: round(r["value"], 3) for r in history
                                 if r["step"] == step and r["split"] != "test"})
    finally:
        bar.close()
        if auxiliary is not None:
            del model.auxiliary_head  # the run's model (and its checkpoint, diverged or not) is the downstream one
    return history


# ---------------------------------------------------------------------------------------------
# Checkpoints

def save_checkpoint(path: str | Path, model: Net, **extra) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": asdict(model.cfg),
                "state_dict": model.state_dict(), **extra}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint where a finished one is expected


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; it is made by the Snakemake rule 'pretrain' or "
                                f"'selfsup': {rebuild_command(path)}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} is corrupted or unreadable ({type(error).__name__}); "
                         f"{rebuild_command(path)}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} file; {rebuild_command(path)}")
    return checkpoint


def init_from_checkpoint(model: Net, path: str | Path) -> Net:
    """Copy a pre-trained backbone into `model`; the task head stays freshly initialised."""
    checkpoint = load_checkpoint(path)
    for key in ("arch", "width", "norm", "groups"):
        if checkpoint["model_config"][key] != getattr(model.cfg, key):
            raise ValueError(f"checkpoint {path} has {key}={checkpoint['model_config'][key]!r} but the model has "
                             f"{key}={getattr(model.cfg, key)!r}; pre-train with the same {key}")
    backbone = {k.removeprefix("backbone."): v for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")}
    model.backbone.load_state_dict(backbone)
    return model


def new_model(data: TaskData, arch: str, width: int, norm: str, seed: int, init: str = "scratch",
              checkpoint: str | Path | None = None, bn_batch: int = 0) -> Net:
    """A seeded model for `data`'s task; any init but 'scratch' (pretrained, simclr, ...) loads the
    backbone from `checkpoint`."""
    if init != "scratch" and checkpoint is None:
        raise ValueError(f"init {init!r} needs a checkpoint; only init 'scratch' starts from random weights")
    torch.manual_seed(seed)
    model = build_model(arch=arch, width=width, norm=norm, bn_batch=bn_batch, task=data.task,
                        num_classes=len(data.classes))
    return init_from_checkpoint(model, checkpoint) if init != "scratch" else model
