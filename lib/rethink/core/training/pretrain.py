"""Upstream pre-training: the study's "ImageNet" is the upstream classification world."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.tasks import load_task_data
from .config import TrainConfig
from .loop import fit
from .checkpoints import new_model, save_checkpoint
from .hardware import resolve_device


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
