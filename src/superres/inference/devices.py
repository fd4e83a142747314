"""Which device and precision a run uses when the caller says 'auto'."""

from __future__ import annotations

import logging

import torch

from superres.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16), where bf16 runs ~2x fp32. Linux only:
    elsewhere it answers False and 'auto' stays fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def auto_device() -> str:
    """'cuda' where there is a CUDA GPU, else 'mps' on Apple silicon, else 'cpu'."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> auto_device(); a CUDA or MPS device that is not there is a ConfigError."""
    device = str(device)
    if device == "auto":
        device = auto_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' asked for, but Apple's MPS is not available")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got '{device}'") from e


def resolve_precision(precision: str | None, device: torch.device, supported: tuple[str, ...] = PRECISIONS) -> str:
    """'auto' (or None): fp16 autocast on CUDA and MPS, bf16 on a CPU that computes it natively, else fp32; and
    fp32 where the model does not tolerate that choice (`supported`). fp16 asked for on a CPU runs as bf16. A
    precision the model does not tolerate, asked for by name, is a ConfigError."""
    if precision in (None, "auto"):
        if device.type in ("cuda", "mps"):
            choice = "fp16"
        else:
            choice = "bf16" if native_bf16() else "fp32"
        return choice if choice in supported else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got '{precision}'")
    if precision == "fp16" and device.type == "cpu":
        log.warning("fp16 is not supported well on CPU; using bf16 instead")
        precision = "bf16"
    if precision not in supported:
        raise ConfigError(f"this model keeps its accuracy only in {', '.join(supported)}, not {precision}")
    return precision
