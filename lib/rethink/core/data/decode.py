"""Images to uint8 arrays of one size: files decoded by DALI (on the GPU with its mixed decoder when CUDA is
present, else on the CPU) or, without DALI, by torchvision.io; arrays resized with an antialiased bilinear filter."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..augment.dali import dali_placement
from ..augment.ladder import dali_installed
from ..training.hardware import resolve_device


def decode_files(paths: Sequence[str | Path], image_size: int, device: str = "cpu",
                 batch_size: int = 64) -> np.ndarray:
    """Decode JPEG/PNG files and squash each to image_size x image_size (linear, antialiased)
    with a DALI pipeline: on the GPU ("mixed" decoder) when `device` resolves to CUDA, else
    on the CPU; without DALI installed, with torchvision.io on the CPU. Returns uint8 [N,S,S,3]
    RGB in the order of `paths`."""
    paths = [str(p) for p in paths]
    n, size = len(paths), int(image_size)
    if size <= 0:
        raise ValueError(f"image_size must be positive; got {image_size}")
    out = np.empty((n, size, size, 3), np.uint8)
    if n == 0:
        return out
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image file(s) do not exist, e.g. {missing[0]!r}")
    if not dali_installed():
        return decode_files_torchvision(paths, size, out)
    dali_device, device_id = dali_placement(resolve_device(device))
    batch = min(int(batch_size), n)
    p = _decode_pipeline(paths, size, dali_device, device_id, batch)
    p.build()
    seen = np.zeros(n, bool)
    for start in range(0, n, batch):
        try:
            images, index = p.run()
        except RuntimeError as exc:  # DALI's message does not name the file: find it
            raise _decode_error(paths[start:start + batch], exc) from exc
        if dali_device == "gpu":
            images = images.as_cpu()
        idx = index.as_array().reshape(-1)
        out[idx] = images.as_array()
        seen[idx] = True
    if not seen.all():  # would mean the reader skipped files
        raise RuntimeError(f"DALI returned {seen.sum()} of {n} images")
    return out


def decode_files_torchvision(paths: list[str], size: int, out: np.ndarray) -> np.ndarray:
    """decode_files without DALI: torchvision.io decodes, a bilinear antialiased resize squashes."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2.functional import resize

    for i, path in enumerate(paths):
        try:
            image = decode_image(path, mode=ImageReadMode.RGB)
        except Exception as exc:
            raise ValueError(f"could not decode {path} (not a valid JPEG or PNG image): {exc}") from exc
        out[i] = resize(image, [size, size], antialias=True).permute(1, 2, 0).numpy()
    return out


def _decode_error(files: list[str], exc: RuntimeError) -> ValueError:
    """A ValueError naming the files of a failed DALI batch that torchvision cannot decode
    either (or, if it can decode them all, the whole batch)."""
    from torchvision.io import decode_image

    bad = []
    for file in files:
        try:
            decode_image(file)
        except Exception:
            bad.append(file)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # DALI's reason follows "encountered:"; its last lines only say that the pipeline broke.
    reason = lines[lines.index("encountered:") + 1] if "encountered:" in lines[:-1] else lines[-1]
    if bad:
        return ValueError(f"could not decode {', '.join(bad)} (not a valid JPEG or PNG image): {reason}")
    return ValueError(f"DALI could not decode an image among {', '.join(files)}: {reason}")


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 [N,H,W,3] -> uint8 [N,S,S,3], bilinear with antialiasing, a chunk at a time
    (the images may be a memory map larger than memory)."""
    size = int(image_size)
    out = np.empty((len(images), size, size, 3), np.uint8)
    chunk = max(1, (1 << 25) // (3 * max(size * size, images.shape[1] * images.shape[2])))  # ~128 MB of floats
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk])).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def _decode_pipeline(paths: list[str], size: int, dali_device: str, device_id: int | None, batch: int):
    """The decode_files pipeline, not yet built: on the GPU the decoder is DALI's "mixed" one (the file is read
    on the CPU, decoded on the GPU) and the resize runs on the GPU."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def
    def pipe():
        # The labels are the files' indices: outputs are placed by them, which also handles
        # the last batch, where the reader wraps around to the first files again.
        data, index = fn.readers.file(files=paths, labels=list(range(len(paths))), random_shuffle=False)
        images = fn.decoders.image(data, device="mixed" if dali_device == "gpu" else "cpu",
                                   output_type=types.RGB)
        return fn.resize(images, resize_x=size, resize_y=size), index

    return pipe(batch_size=batch, num_threads=max(1, min(4, os.cpu_count() or 1)), device_id=device_id,
                seed=0, prefetch_queue_depth=1)
