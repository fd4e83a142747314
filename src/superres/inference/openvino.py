"""The OpenVINO backend: a model run by OpenVINO on the CPU (the extra `superres[openvino]`).

    runner = OpenVinoBackend().prepare(handle, device="auto", precision="auto", threads=None)
    y = runner.run(x, scale)  # as every backend's runner (backends.py)

A network goes to OpenVINO through its ONNX export (inference/onnx.py) and is compiled once per scale with
dynamic height and width: benchmarks/openvino_shapes.py measured dynamic shapes as fast as a model compiled for the
exact size, and a new size costs no recompilation, so there are no padded size buckets. bf16 is OpenVINO's
inference-precision hint, which the CPU computes natively with AVX512-BF16 or AMX ('auto' picks it there, as
for torch); `threads` is INFERENCE_NUM_THREADS (None: PyTorch's count, so OMP_NUM_THREADS and torchrun's one
thread per process hold for OpenVINO too).

Two caches keep the cost of getting there (about 1.4 s for the bundled default: export 0.9 s, conversion
0.37 s, compilation 0.1 s) to the first time:
- compiled models, in this process: COMPILED, keyed by the weights' SHA-256, scale, precision and threads, so
  every upscaler of the same weights (each `superres.upscale` call, each denoise strength used) shares one;
- converted models, on disk: OpenVINO's own format (IR) in the user's cache folder (`cache_folder()`), keyed
  the same way plus the OpenVINO and superres versions and the family's source files, so the next process
  reads 1 MB instead of converting.
  At most CACHED_FILES models are kept there, the least recently used removed first; a folder that cannot
  be written only costs the conversion each time.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import logging
import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superres.errors import BackendError, CheckpointError
from superres.inference.devices import native_bf16, resolve_precision
from superres.inference.onnx import onnx_bytes, refuse_below_export_size
from superres.inference.warm import Lru
from superres.models.handle import ModelHandle

log = logging.getLogger(__name__)

COMPILED: Lru[tuple, Any] = Lru(8)  # compiled models of this process; clear with COMPILED.clear()
CACHED_FILES = 16  # converted models kept in the cache folder


def installed() -> bool:
    """Whether OpenVINO can be imported (the extra superres[openvino] is installed)."""
    try:
        import openvino  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@functools.cache
def openvino_core() -> Any:
    """The process's one OpenVINO Core, never released. Each Core's CPU plugin points the main thread's signal
    stack (sigaltstack) at memory of its own and, when released, back at the previous one: with Cores released
    out of order, that memory is freed while in use, and the next signal (Ctrl-C) crashes the process."""
    import openvino as ov  # noqa: PLC0415 - the optional extra, imported when it is used

    return ov.Core()


def cache_folder() -> Path:
    """$SUPERRES_CACHE, else $XDG_CACHE_HOME/superres, else ~/.cache/superres; converted models go in openvino/."""
    base = os.environ.get("SUPERRES_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "superres"
    )
    return Path(base) / "openvino"


def weights_digest(handle: ModelHandle) -> str:
    """SHA-256 of what the network computes: its family and config, and every tensor of its state in fp32.
    Remembered per network while none of its tensors changes (PyTorch counts each tensor's in-place changes)."""
    versions = tuple(t._version for t in itertools.chain(handle.net.parameters(), handle.net.buffers()))
    known = _DIGESTS.get(handle.net)
    if known is not None and known[0] == versions and known[1] == handle.pixel_range:
        return known[2]
    digest = _digest(handle)
    _DIGESTS[handle.net] = (versions, handle.pixel_range, digest)
    return digest


_DIGESTS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[int, ...], float, str]] = weakref.WeakKeyDictionary()


def _digest(handle: ModelHandle) -> str:
    h = hashlib.sha256(f"{handle.arch} {handle.config.to_dict()!r} {handle.pixel_range}".encode())
    for name, tensor in handle.net.state_dict().items():
        t = tensor.detach().to("cpu")
        t = t.float() if t.is_floating_point() else t
        h.update(name.encode())
        h.update(np.ascontiguousarray(t.numpy()).reshape(-1).view(np.uint8).data)
    return h.hexdigest()


class OpenVinoRunner:
    """The network run by OpenVINO on the CPU: converted from its ONNX export (the handle's file, or the network
    exported in memory), one compiled model per scale with dynamic height and width, shared through COMPILED.

    fallback: a runner for inputs smaller than the export takes (`export_min_side`); the auto backend gives
    the torch runner here, so that a tiny picture still runs. Without one, such an input is a BackendError."""

    backend = "openvino"

    def __init__(
        self,
        handle: ModelHandle,
        device: str,
        precision: str | None,
        threads: int | None,
        fallback: Any = None,
    ) -> None:
        import openvino as ov  # OpenVinoBackend.check: it is there

        self.device, self.precision = OpenVinoBackend().check(handle, device, precision)
        self.handle = handle
        # None: as many as PyTorch uses, which follows OMP_NUM_THREADS (torchrun sets 1 per process) or the cores
        self.threads = threads if threads is not None else torch.get_num_threads()
        self.fallback = fallback
        # int8: the layers the quantisation left in floating point run in bf16 where the CPU computes it natively
        half = self.precision == "bf16" or (self.precision == "int8" and native_bf16())
        self.config: dict[str, object] = {
            "INFERENCE_PRECISION_HINT": "bf16" if half else "f32",
            "INFERENCE_NUM_THREADS": self.threads,
        }
        self._ov = ov
        self._identity: tuple | str = _file_identity(handle.onnx) if handle.onnx is not None else weights_digest(handle)
        self._compiled: dict[int, Any] = {}

    def compiled(self, scale: int) -> Any:
        """The compiled model at `scale`, from COMPILED, the cache folder, or made now."""
        if scale not in self._compiled:
            key = (self._identity, scale, self.precision, self.threads)
            self._compiled[scale] = COMPILED.get(key, lambda: self._compile(scale))
        return self._compiled[scale]

    def _compile(self, scale: int) -> Any:
        core = openvino_core()
        if self.precision == "int8":
            model = core.read_model(str(int8_files(self.handle)[scale]))  # check: they are there
        elif self.handle.onnx is not None:
            model = core.read_model(str(self.handle.onnx))
        else:
            model = _converted(self._ov, core, self.handle, scale, str(self._identity))
        return core.compile_model(model, "CPU", self.config)

    def run(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if min(x.shape[-2:]) < self.handle.export_min_side and self.fallback is not None:
            return self.fallback.run(x, scale)
        refuse_below_export_size(self.handle, x)
        compiled = self.compiled(scale)
        try:
            out = compiled(np.ascontiguousarray(x.float().numpy()))[0]
        except Exception as e:  # OpenVINO raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"OpenVINO failed on a {x.shape[-1]}x{x.shape[-2]} input ({first})") from e
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


class OpenVinoBackend:
    """fallback: a backend for inputs below what the model's ONNX export takes (auto gives torch)."""

    name = "openvino"

    def __init__(self, fallback: Any = None) -> None:
        self.fallback = fallback

    def check(self, handle: ModelHandle, device: str, precision: str | None) -> tuple[torch.device, str]:
        """The CPU, and fp32 or bf16 (auto: bf16 where the CPU computes it natively and the model keeps its
        accuracy in it), or the BackendError a run would raise."""
        if not installed():
            raise BackendError("the openvino backend needs OpenVINO: pip install 'superres[openvino]'")
        if str(device) not in ("auto", "cpu"):
            raise BackendError(f"the openvino backend runs on the CPU here, not on '{device}'")
        if precision == "int8":
            files = int8_files(handle)
            missing = [s for s in handle.scales if s not in files]
            if not files or missing:
                from superres.models.registry import PRETRAINED  # noqa: PLC0415 - the package's files

                shipped = ", ".join(e.name for e in PRETRAINED.values() if e.int8) or "none"
                raise BackendError(
                    f"int8 runs the bundled models whose quantised files ship with superres ({shipped}; "
                    f"benchmarks/int8.py); {handle.name or 'this model'} runs fp32 or bf16"
                )
            return torch.device("cpu"), "int8"
        if precision == "fp16":
            raise BackendError("the openvino backend runs fp32 or bf16, not fp16")
        cpu = torch.device("cpu")  # resolve_precision: ConfigError for an unknown precision
        return cpu, resolve_precision(precision, cpu, handle.openvino_precisions)

    def prepare(self, handle: ModelHandle, device: str, precision: str | None, threads: int | None) -> OpenVinoRunner:
        fallback = None
        if self.fallback is not None and handle.onnx is None and handle.export_min_side > 1:
            fallback = self.fallback.prepare(handle, device, precision, threads)
        return OpenVinoRunner(handle, device, precision, threads, fallback)


def int8_files(handle: ModelHandle) -> dict[int, Path]:
    """The quantised OpenVINO files shipped for this network's weights, by scale (the bundled default's, made by
    benchmarks/int8.py from exactly these weights); empty for any other network."""
    from superres.models.registry import PRETRAINED  # noqa: PLC0415 - the registry reads the package's files

    if handle.onnx is not None:
        return {}
    digest = None
    for entry in PRETRAINED.values():
        if entry.int8 and entry.int8_digest:
            digest = digest or weights_digest(handle)
            if digest == entry.int8_digest:
                return {scale: entry.path(file) for scale, file in entry.int8.items()}
    return {}


def _file_identity(path: Path) -> tuple:
    stat = path.stat()
    return ("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns)


# ---------------------------------------------------------------------------------------------- the cache folder


def _converted(ov: Any, core: Any, handle: ModelHandle, scale: int, digest: str) -> Any:
    """The network at `scale` as an OpenVINO model: read from the cache folder, or exported, converted and
    stored there."""
    folder = cache_folder()
    stem = f"{handle.arch}-x{scale}-{_code_digest(handle, digest)[:24]}"
    xml = folder / f"{stem}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        try:
            model = core.read_model(str(xml))
            os.utime(xml)  # recently used: pruned last
            return model
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own exception types; a damaged file is made again
            log.info("the cached OpenVINO model %s could not be read (%s); converting again", xml, e)
    try:
        model = ov.convert_model(io.BytesIO(onnx_bytes(handle, scale)))
    except Exception as e:  # OpenVINO raises its own exception types
        raise CheckpointError(f"OpenVINO cannot convert this {handle.arch} model ({str(e).splitlines()[0]})") from e
    try:
        _store(ov, model, xml)
    except OSError as e:
        log.info("could not keep the converted model in %s (%s); it is converted again next time", folder, e)
    return model


def _code_digest(handle: ModelHandle, digest: str) -> str:
    """The weights' digest with what makes a graph of them: the versions of superres and OpenVINO, and the source
    files of the family and of the network's class (a family edited in place converts again)."""
    import openvino  # noqa: PLC0415 - installed: the caller imported it

    from superres import __version__  # noqa: PLC0415 - the package imports this module

    h = hashlib.sha256(f"{digest} {__version__} {openvino.__version__}".encode())
    for cls in (type(handle.family), type(handle.net)):
        source = getattr(sys.modules.get(cls.__module__), "__file__", None)
        h.update(Path(source).read_bytes() if source else cls.__qualname__.encode())
    return h.hexdigest()


def _store(ov: Any, model: Any, xml: Path) -> None:
    """Write model as xml + bin beside each other: into a temporary folder first, then renamed into place, the
    .xml last (so an .xml is only ever seen complete); then prune the folder to CACHED_FILES models."""
    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".part-", dir=xml.parent))
    try:
        ov.save_model(model, str(tmp / xml.name), compress_to_fp16=False)  # the default halves the weights
        os.replace(tmp / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
        os.replace(tmp / xml.name, xml)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kept = sorted(xml.parent.glob("*.xml"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[CACHED_FILES:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".bin").unlink(missing_ok=True)
