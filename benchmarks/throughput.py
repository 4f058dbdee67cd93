"""Training throughput and augmentation cost on this machine (not part of `make test`).

    .venv/bin/python benchmarks/throughput.py   # writes benchmarks/results/throughput.json
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from rethink.augment import LEVELS, make_augment
from rethink.detection import detection_loss
from rethink.models import build_model
from rethink.pseudo import pseudo_label
from rethink.selfsup import METHODS
from rethink.train import autocast, resolve_device


def seconds_per_call(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def main(batch: int = 128) -> dict:
    device = resolve_device("auto")
    out = {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
           "threads": torch.get_num_threads(), "batch": batch, "train_images_per_s": {}, "augment_ms_per_batch": {}}
    for size in (32, 64):
        model = build_model(num_classes=10).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.rand(batch, 3, size, size, device=device)
        y = torch.randint(0, 10, (batch,), device=device)

        def step():
            with autocast(device):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        out["train_images_per_s"][f"resnet9_w16_{size}px"] = round(batch / seconds_per_call(step), 1)
    # The HE notebooks' detector: 48 px scenes, batch 32, CenterNet loss with gradient clipping.
    for size, det_batch in ((48, 32), (64, 32)):
        model = build_model(task="detect", num_classes=10).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.rand(det_batch, 3, size, size, device=device)
        boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0], [24.0, 20.0, 40.0, 44.0]], device=device).expand(det_batch, 2, 4)
        labels = torch.tensor([1, 3], device=device).expand(det_batch, 2)

        def detect_step():
            with autocast(device):
                loss = detection_loss(model(x), boxes, labels, stride=model.head.stride)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        out["train_images_per_s"][f"resnet9_w16_detect_{size}px_batch{det_batch}"] = round(
            det_batch / seconds_per_call(detect_step), 1)
    # Self-training: a teacher labelling a 4096-image uint8 pool in batches.
    teacher = build_model(num_classes=10).to(device)
    pool = torch.randint(0, 256, (4096, 32, 32, 3), dtype=torch.uint8, device=device)
    out["pseudo_label_images_per_s"] = round(
        len(pool) / seconds_per_call(lambda: pseudo_label(teacher, pool, "classify", tuple("abcdefghij"), 0.5), 2), 1)
    # Self-supervised pre-training: one step of each method of the zoo (two views for SimCLR and SwAV).
    x = torch.rand(256, 3, 32, 32, device=device)
    out["selfsup_images_per_s_batch256"] = {}
    for name, method in METHODS.items():
        encoder = build_model(num_classes=10).to(device)
        heads = method(encoder, 32).to(device)
        optimizer = torch.optim.SGD(list(encoder.parameters()) + list(heads.parameters()), lr=0.01)

        def selfsup_step():
            with autocast(device):
                loss = heads.loss(encoder, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        out["selfsup_images_per_s_batch256"][name] = round(256 / seconds_per_call(selfsup_step), 1)
    images = torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8, device=device)
    for backend in ("kornia", "dali"):
        for level in LEVELS:
            augment = make_augment(backend, level, 32, batch, device, seed=0)
            out["augment_ms_per_batch"][f"{backend}_{level}"] = round(1000 * seconds_per_call(lambda: augment(images)), 1)
    path = Path(__file__).parent / "results" / "throughput.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
