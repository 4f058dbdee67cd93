"""The CUDA path: DALI `device="gpu"` and its "mixed" decoder, Kornia on CUDA, bf16 chosen by `precision: auto`.

Tests marked `cuda` run on a GPU (benchmarks/gpu_check.py runs them there: `make gpu-check`); without one they are
skipped, or walked on the CPU under RETHINK_CUDA_TESTS_ON_CPU=1 (gpu_check.py --dry-run). The unmarked tests check
on the CPU what can be checked without a GPU: device selection, and the DALI graphs built for the GPU."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import requires_dali
from rethink.core.augment.agreement import agreement, flip_crop_dali, flip_crop_kornia
from rethink.core.augment.ladder import LEVELS
from rethink.core.data import decode
from rethink.core.data import world as W
from rethink.core.data.tasks import load_task_data
from rethink.core.training import hardware
from rethink.core.training.checkpoints import new_model
from rethink.core.training.config import TrainConfig
from rethink.core.training.loop import fit

IMAGE_OPS = {"ExternalSource", "Flip", "Resize", "Crop", "WarpAffine", "Rotate", "Brightness", "Saturation",
             "Filter", "Equalize", "CropMirrorNormalize"}


def _world_images(n: int = 64) -> torch.Tensor:
    data = W.generate_classification(n, W.DOWNSTREAM_CLASSES[:4], W.WorldSpec(image_size=32), seed=0)
    return torch.from_numpy(np.asarray(data["images"]))


def _placements(pipe) -> dict[str, set[str]]:
    """Operator -> the devices its outputs live on, from the pipeline's graph, built without running it (DALI's
    private _build_graph: the public build() needs the GPU itself)."""
    pipe._build_graph()
    found: dict[str, set[str]] = {}
    for op in pipe._ops:
        found.setdefault(type(op._op).__name__, set()).update(o.device for o in op.outputs)
    return found


@requires_dali
@pytest.mark.parametrize("level", ["S1", "S4"])
def test_the_dali_ladder_for_the_gpu_runs_every_image_op_there(level):
    from rethink.core.augment.dali import _external_source_pipeline

    kwargs = dict(batch_size=8, num_threads=1, device_id=0, seed=0, prefetch_queue_depth=1)
    on_gpu = _placements(_external_source_pipeline(level, 32, "gpu", **kwargs))
    image_ops = IMAGE_OPS & set(on_gpu)
    assert {"ExternalSource", "Flip", "Resize", "Crop", "CropMirrorNormalize"} <= image_ops
    assert level != "S4" or {"WarpAffine", "Equalize"} <= image_ops  # RandAugment's ops are in the graph
    assert all(on_gpu[op] == {"gpu"} for op in image_ops), on_gpu
    # The random parameters stay on the CPU: the GPU graph draws what the CPU graph draws for the same seed.
    assert on_gpu["CoinFlip"] == on_gpu["Uniform"] == {"cpu"}
    on_cpu = _placements(_external_source_pipeline(level, 32, "cpu", **{**kwargs, "device_id": None}))
    assert set(on_cpu) == set(on_gpu) and all(devices == {"cpu"} for devices in on_cpu.values())


@requires_dali
def test_the_gpu_decoder_is_dalis_mixed_one():
    found = _placements(decode._decode_pipeline(["a.png"], 32, "gpu", 0, 1))
    assert found == {"File": {"cpu"}, "Image": {"gpu"}, "Resize": {"gpu"}}  # read on the CPU, decoded on the GPU
    assert _placements(decode._decode_pipeline(["a.png"], 32, "cpu", None, 1))["Image"] == {"cpu"}


def test_auto_picks_cuda_and_bf16_when_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert hardware.resolve_device("auto") == "cuda" and hardware.resolve_device("cuda:1") == "cuda:1"
    assert hardware.resolve_precision("auto", "cuda") == hardware.resolve_precision("auto", "cuda:1") == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)  # a CPU without AMX or AVX512-BF16
    assert hardware.resolve_device("auto") == "cuda" and hardware.resolve_precision("auto", "cpu") == "fp32"


@requires_dali
@pytest.mark.cuda
@pytest.mark.parametrize("flip,top,left,size", [(False, 0, 0, 32), (True, 3, 5, 24), (True, 8, 1, 16)])
def test_flip_crop_agrees_on_the_accelerator(accelerator, flip, top, left, size):
    x = _world_images(8)
    reference = flip_crop_kornia(x.permute(0, 3, 1, 2), flip, top, left, size)  # Kornia on the CPU
    on_device = x.to(accelerator)
    kornia = flip_crop_kornia(on_device.permute(0, 3, 1, 2), flip, top, left, size)
    dali = flip_crop_dali(on_device, flip, top, left, size)
    assert kornia.device.type == dali.device.type == torch.device(accelerator).type
    assert torch.equal(kornia.cpu(), reference)
    assert (dali.cpu() - reference).abs().max() <= 1 / 255 + 1e-6


@requires_dali
@pytest.mark.cuda
@pytest.mark.parametrize("level", LEVELS)
def test_the_ladder_statistics_agree_across_devices(accelerator, level):
    """Each backend on the accelerator against itself on the CPU (same seed, so the same random parameters);
    across backends only S0 and S1 are alike (their AutoAugment and RandAugment differ: ladder.py)."""
    row = agreement(accelerator, _world_images(128), levels=(level,))[level]
    assert max(row["gap between devices"].values()) <= 0.01, row
    assert level not in ("S0", "S1") or row["gap between backends"] <= 0.01, row


@pytest.mark.cuda
def test_a_bf16_run_on_the_accelerator_learns_and_repeats(accelerator, tiny_world):
    data = load_task_data(tiny_world / "classify_train.npz", "classify")
    precision = "auto" if accelerator == "cuda" else "bf16"  # auto is bf16 on CUDA (the test above)
    cfg = TrainConfig(epochs_1x=1, batch_size=64, evals=1, progress=False, aug="S1", device=accelerator,
                      precision=precision)
    runs = [fit(new_model(data, "resnet9", 8, "gn", seed=3), data, data, cfg) for _ in range(2)]
    assert runs[0] == runs[1]  # the same seed on the same machine: the same numbers
    losses = [r["value"] for r in runs[0] if r["metric"] == "loss"]
    assert losses and all(np.isfinite(losses))
    fp32 = fit(new_model(data, "resnet9", 8, "gn", seed=3), data, data, dataclasses.replace(cfg, precision="fp32"))
    assert fp32 != runs[0]  # bf16 really ran


@requires_dali
@pytest.mark.cuda
def test_decoding_on_the_accelerator_agrees_with_the_cpu(accelerator, image_folder_path):
    paths = sorted((image_folder_path / "train").rglob("*.png"))
    cpu = decode.decode_files(paths, 32, "cpu", batch_size=4).astype(int)
    there = decode.decode_files(paths, 32, accelerator, batch_size=4).astype(int)
    assert cpu.shape == there.shape == (len(paths), 32, 32, 3) and np.abs(cpu - there).max() <= 2
