"""Checkpoints: a pre-trained backbone written and read back, and a seeded model that starts from one."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..data.cachefiles import rebuild_command
from ..data.tasks import TaskData
from ..models.nets import Net, build_model


CHECKPOINT_FORMAT = "rethink-checkpoint-v1"


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
