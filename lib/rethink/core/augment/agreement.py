"""Do the backends and devices compute the same augmentation? A fixed flip + crop on Kornia and DALI (exact up to
rounding), and the ladder's output statistics per backend, level and device. The tests check both on the CPU; on a
GPU, `benchmarks/gpu_check.py` checks DALI `device="gpu"` and Kornia on CUDA against them and records the table.

Kornia and DALI implement AutoAugment and RandAugment differently (ladder.py says how), so across backends only
S0 and S1 are expected to agree closely; the same backend on the CPU and on CUDA draws the same random parameters
(both sample them on the CPU) and should agree at every level up to interpolation."""
from __future__ import annotations

import torch

from .backends import make_augment
from .ladder import LEVELS


def _check_window(h: int, w: int, top: int, left: int, size: int) -> None:
    if size <= 0 or top < 0 or left < 0 or top + size > h or left + size > w:
        raise ValueError(f"crop window top={top}, left={left}, size={size} does not fit in {h}x{w}")


def flip_crop_kornia(images: torch.Tensor, flip: bool, top: int, left: int, size: int) -> torch.Tensor:
    """Horizontal flip (if ``flip``) *then* crop of ``size x size`` at (top, left) of the flipped image.

    ``images``: float [B,3,H,W] in [0,1] (uint8 is converted by /255). Returns float [B,3,size,size].
    """
    from kornia.geometry.transform import hflip

    x = images if images.is_floating_point() else images.float() / 255.0
    _check_window(x.shape[-2], x.shape[-1], top, left, size)
    if flip:
        x = hflip(x)
    return x[..., top:top + size, left:left + size].contiguous()


def flip_crop_dali(images_uint8_nhwc: torch.Tensor, flip: bool, top: int, left: int, size: int) -> torch.Tensor:
    """DALI version of :func:`flip_crop_kornia`: uint8 [B,H,W,3] -> float [B,3,size,size] in [0,1], on a
    throw-away pipeline whose operators run where the input lives (``device="gpu"`` for a CUDA tensor)."""
    from nvidia.dali import fn, pipeline_def, types

    from .dali import dali_to_torch

    x = images_uint8_nhwc.contiguous()
    b, h, w, _ = x.shape
    _check_window(h, w, top, left, size)
    on_gpu = x.device.type == "cuda"

    @pipeline_def
    def pipe():
        imgs = fn.external_source(name="images", device="gpu" if on_gpu else "cpu", layout="HWC",
                                  dtype=types.UINT8, batch=True)
        if flip:
            imgs = fn.flip(imgs, horizontal=1)
        imgs = fn.slice(imgs, start=[top, left], shape=[size, size], axis_names="HW")
        return fn.crop_mirror_normalize(imgs, dtype=types.FLOAT, output_layout="CHW", mean=[0.0], std=[255.0])

    device_id = (x.device.index if x.device.index is not None else torch.cuda.current_device()) if on_gpu else None
    p = pipe(batch_size=b, num_threads=1, device_id=device_id, seed=0, prefetch_queue_depth=1)
    p.build()
    p.feed_input("images", x if on_gpu else x.numpy(), layout="HWC")
    (out,) = p.run()
    return dali_to_torch(out, x.device, zero_copy=False)


def ladder_statistics(backend: str, level: str, device: str, images: torch.Tensor, seed: int = 0) -> list[float]:
    """One augmentation call's output statistics: per-channel means, per-channel sds, and the mean per-image sd."""
    y = make_augment(backend, level, images.shape[1], len(images), device, seed)(images.to(device)).float().cpu()
    return [round(float(v), 4) for v in
            torch.cat([y.mean((0, 2, 3)), y.std((0, 2, 3)), y.flatten(1).std(1).mean()[None]])]


def agreement(device: str, images: torch.Tensor, backends=("kornia", "dali"), levels=LEVELS) -> dict:
    """The table gpu_check.py records: each backend's statistics on the CPU and on `device`, per level, with the
    largest gap between devices (same backend) and between backends (same device)."""
    table = {}
    for level in levels:
        row = {f"{b} {d}": ladder_statistics(b, level, d, images) for b in backends for d in dict.fromkeys(("cpu", device))}
        gap = lambda a, b: round(max(abs(x - y) for x, y in zip(row[a], row[b])), 4)
        row["gap between devices"] = {b: gap(f"{b} cpu", f"{b} {device}") for b in backends}
        row["gap between backends"] = gap(f"{backends[0]} {device}", f"{backends[1]} {device}")
        table[level] = row
    return table
