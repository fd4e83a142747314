"""Backends: what runs a model's network on tensors. PyTorch, ONNX Runtime and OpenVINO (openvino.py), behind
one interface; 'auto' picks one for the model and the device (get_backend).

    runner = get_backend("torch").prepare(handle, device="auto", precision="auto", threads=None)
    y = runner.run(x, scale)  # (N, C, h, w) float32 0..255 on runner.device -> (N, C, h*s, w*s) float32 0..255

A backend converts pixels to the range the model takes (`handle.pixel_range`) and back. An option it cannot
honour (a GPU for ONNX Runtime, a half precision it does not run, a model it cannot hold) is a BackendError,
never dropped. Tiling, self-ensemble and pictures are the Upscaler's (upscaler.py), the same for every backend.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import torch

from superres.errors import BackendError, CheckpointError, ConfigError, did_you_mean
from superres.inference.devices import resolve_device, resolve_precision
from superres.inference.onnx import onnx_bytes, refuse_below_export_size
from superres.inference.openvino import OpenVinoBackend, installed
from superres.models.handle import ModelHandle

log = logging.getLogger(__name__)


class Runner(Protocol):
    """A model prepared for one device, precision and thread count."""

    backend: str  # the backend's name
    device: torch.device
    precision: str

    def run(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """(N, C, h, w) float32 in 0..255 on `device` -> float32 (N, C, h*s, w*s) in 0..255, not clipped."""
        ...


class Backend(Protocol):
    name: str

    def check(self, handle: ModelHandle, device: str, precision: str | None) -> tuple[torch.device, str]:
        """The device and precision `prepare` would give, or the error it would raise, without preparing."""
        ...

    def prepare(self, handle: ModelHandle, device: str, precision: str | None, threads: int | None) -> Runner:
        """The model ready to run. device: 'auto', 'cpu', 'cuda[:N]' or 'mps'; precision: 'auto'/None, 'fp32',
        'bf16' or 'fp16'; threads: CPU threads (None: the library's default)."""
        ...


# ---------------------------------------------------------------------------------------------- PyTorch


class TorchRunner:
    """The network in PyTorch, channels-last, under autocast for bf16/fp16.

    A network on another device than the one asked for is copied there (the caller's stays where it is);
    on its own device it is used as it is, put in eval mode and converted to channels-last memory format in
    place (its values do not change). `threads` sets PyTorch's thread count, which is per process."""

    backend = "torch"

    def __init__(self, handle: ModelHandle, device: str, precision: str | None, threads: int | None) -> None:
        self.device, self.precision = TorchBackend().check(handle, device, precision)
        if threads is not None:
            torch.set_num_threads(threads)
        if not same_device(handle.device, self.device):
            handle = handle.copy_to(self.device)
        handle.net.eval().to(memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue] - torch's stubs omit memory_format
        self.handle = handle

    def _scaled(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """The network on 0..255 pixels: converted to its range and back (nothing to do for 255)."""
        white = self.handle.pixel_range
        if white == 255.0:
            return self.handle.run(x, scale).float()
        return self.handle.run(x * (white / 255.0), scale).float() * (255.0 / white)

    def run(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """Under half precision, a batch whose output overflows (inf/nan) is run again in fp32."""
        x = x.contiguous(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if dtype is None:
            return self._scaled(x, scale)
        with torch.autocast(self.device.type, dtype=dtype):
            y = self._scaled(x, scale)
        if not torch.isfinite(y).all():
            log.warning("%s overflowed on a tile; recomputing it in fp32", self.precision)
            y = self._scaled(x, scale)
        return y


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are one: 'cuda' is the current CUDA device, so it is 'cuda:0' there."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


class TorchBackend:
    name = "torch"

    def check(self, handle: ModelHandle, device: str, precision: str | None) -> tuple[torch.device, str]:
        """The device and precision a run would use, or the BackendError / ConfigError it would raise."""
        if handle.onnx is not None:
            raise BackendError(f"{handle.onnx} is an ONNX export; it runs with the onnxruntime backend")
        if precision == "int8":
            raise BackendError("int8 runs with the openvino backend on a CPU (superres[openvino])")
        resolved = resolve_device(device)
        return resolved, resolve_precision(precision, resolved, handle.precisions)

    def prepare(self, handle: ModelHandle, device: str, precision: str | None, threads: int | None) -> TorchRunner:
        return TorchRunner(handle, device, precision, threads)


# ---------------------------------------------------------------------------------------------- ONNX Runtime


class OnnxRunner:
    """An ONNX export run by ONNX Runtime on the CPU in fp32: the handle's file, or the handle's network
    exported in memory (one graph per scale, made when first run)."""

    backend = "onnxruntime"

    def __init__(self, handle: ModelHandle, device: str, precision: str | None, threads: int | None) -> None:
        import onnxruntime as ort  # OnnxBackend.check: it is there

        self.device, self.precision = OnnxBackend().check(handle, device, precision)
        self.handle = handle
        self.options = ort.SessionOptions()
        if threads is not None:
            self.options.intra_op_num_threads = threads
        self._ort = ort
        self._sessions: dict[int, object] = {}
        if handle.onnx is not None:
            self._sessions[handle.scale] = self._session(str(handle.onnx))

    def _session(self, model: str | bytes):
        try:
            return self._ort.InferenceSession(model, self.options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            where = self.handle.onnx or self.handle.name or "the model"
            raise CheckpointError(f"{where}: not a readable ONNX model ({str(e).splitlines()[0]})") from e

    def run(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if scale not in self._sessions:
            self._sessions[scale] = self._session(onnx_bytes(self.handle, scale))
        session = self._sessions[scale]
        refuse_below_export_size(self.handle, x)
        lr = np.ascontiguousarray(x.float().numpy())
        try:
            return torch.from_numpy(session.run(["sr"], {"lr": lr})[0])  # type: ignore[attr-defined]
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"onnxruntime failed on a {x.shape[-1]}x{x.shape[-2]} input ({first})") from e


class OnnxBackend:
    name = "onnxruntime"

    def check(self, handle: ModelHandle, device: str, precision: str | None) -> tuple[torch.device, str]:
        """The device and precision a run would use (the CPU, fp32), or the BackendError it would raise."""
        try:
            import onnxruntime  # noqa: F401, PLC0415
        except ImportError as e:
            raise BackendError("the onnxruntime backend needs onnxruntime: pip install 'superres[onnx]'") from e
        if str(device) not in ("auto", "cpu"):
            raise BackendError(f"the onnxruntime backend runs on the CPU only, not on '{device}'")
        if precision not in (None, "auto", "fp32"):
            raise BackendError(f"the onnxruntime backend runs fp32 only, not {precision}")
        return torch.device("cpu"), "fp32"

    def prepare(self, handle: ModelHandle, device: str, precision: str | None, threads: int | None) -> OnnxRunner:
        return OnnxRunner(handle, device, precision, threads)


# ---------------------------------------------------------------------------------------------- choosing one


BACKENDS: dict[str, Backend] = {"torch": TorchBackend(), "onnxruntime": OnnxBackend(), "openvino": OpenVinoBackend()}


def get_backend(
    name: str | None, handle: ModelHandle | None = None, device: str = "auto", precision: str | None = None
) -> Backend:
    """A backend by name, or for 'auto' (or None) the one that runs `handle` fastest where it will run:
    OpenVINO on the CPU where it is installed and the model's family runs there (an ONNX export too), else
    onnxruntime for an ONNX export, else torch (which also takes every GPU, and fp16). benchmarks/runtimes.py
    measured OpenVINO bf16 ahead of PyTorch's at every family it runs (docs/speed.md)."""
    if name in (None, "auto"):
        if handle is not None and _runs_on_openvino(handle, device, precision):
            return OpenVinoBackend(fallback=BACKENDS["torch"])  # a tiny input runs in torch, not as an error
        return BACKENDS["onnxruntime" if handle is not None and handle.onnx is not None else "torch"]
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'{did_you_mean(str(name), ['auto', *BACKENDS])}")
    return BACKENDS[name]


def _runs_on_openvino(handle: ModelHandle, device: str, precision: str | None) -> bool:
    """On the CPU, with OpenVINO installed, for a family it runs, in the precision PyTorch would choose (a family
    that keeps its accuracy in bf16 only under PyTorch's autocast, CARN-M, stays with PyTorch bf16)."""
    cpu = resolve_device(device)
    if cpu.type != "cpu" or precision == "fp16" or not installed():
        return False
    if handle.onnx is not None or precision == "int8":  # int8: only OpenVINO runs it (or says why it cannot)
        return True
    try:
        wanted = resolve_precision(precision, cpu, handle.precisions)
        return handle.family.openvino and resolve_precision(precision, cpu, handle.openvino_precisions) == wanted
    except ConfigError:
        return False
