"""Where and in what precision a run computes: device selection (CUDA when present) and bf16 autocast."""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch


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


def autocast(device, precision: str = "fp32") -> torch.autocast:
    """bf16 autocast (the papers train with mixed precision) when `precision` resolves to bf16, else fp32."""
    kind = torch.device(device).type
    return torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16")
