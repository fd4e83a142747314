"""ONNX export: a model at one of its scales as an ONNX graph (dynamic batch, height and width) that takes and
gives float32 pixels in 0..255, whatever range the network itself works in. The onnxruntime backend
(backends.py) runs these files, or exports a loaded model in memory.

Needs the optional packages: pip install 'superres[onnx]' (onnx to export, onnxruntime to run).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from superres.errors import BackendError, ConfigError
from superres.imaging.files import atomic_path
from superres.models.checkpoints import METADATA_KEY
from superres.models.handle import ModelHandle, as_handle


class _AtScale(torch.nn.Module):
    """A network fixed to one of its scales, on 0..255 pixels: what one ONNX file holds."""

    def __init__(self, handle: ModelHandle, scale: int) -> None:
        super().__init__()
        self.net, self.handle, self.scale = handle.net, handle, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        white = self.handle.pixel_range
        if white == 255.0:
            return self.handle.run(x, self.scale)
        return self.handle.run(x * (white / 255.0), self.scale) * (255.0 / white)


def _export(handle: ModelHandle, target: str | io.BytesIO, scale: int, opset: int) -> None:
    dummy = torch.rand(1, handle.n_colors, 32, 32) * 255
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _AtScale(handle, scale),
            (dummy,),
            target,  # pyright: ignore[reportArgumentType] - the exporter also writes to a file object
            input_names=["lr"],
            output_names=["sr"],
            opset_version=opset,
            dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "h_out", 3: "w_out"}},
            dynamo=False,
        )


def _cpu_fp32(model: ModelHandle) -> ModelHandle:
    """The handle itself when its network is fp32 on the CPU, else a copy that is (the caller's is left alone)."""
    if model.onnx is not None:
        raise ConfigError(f"{model.onnx} is already an ONNX export; export the weights file it was made from")
    first = next(iter(model.net.parameters()), None)
    if first is not None and (first.device.type != "cpu" or first.dtype != torch.float32):
        model = model.copy_to("cpu")
        model.net.float()
    return model.eval()


def refuse_below_export_size(handle: ModelHandle, x: torch.Tensor) -> None:
    """A BackendError for an input smaller than the model's ONNX export takes (a family's export_min_side)."""
    least = handle.export_min_side
    if min(x.shape[-2:]) < least:
        raise BackendError(
            f"the ONNX export of this {handle.arch} model takes pictures (and tiles) of at least {least} "
            f"pixels a side, not {x.shape[-1]}x{x.shape[-2]}; the torch backend takes any size"
        )


def onnx_bytes(model: ModelHandle, scale: int, opset: int = 17) -> bytes:
    """`model` at `scale` as an ONNX graph in memory (no metadata)."""
    handle = _cpu_fp32(model)
    buffer = io.BytesIO()
    _export(handle, buffer, handle.check_scale(scale), opset)
    return buffer.getvalue()


def export_onnx(
    model, path: str | os.PathLike, scale: int | None = None, opset: int = 17, metadata: dict | None = None
) -> Path:
    """Write `model` (a handle or a superres network) at `scale` (None: its only scale) as ONNX with input 'lr'
    (N, C, H, W) and output 'sr', H and W dynamic, float32 0..255. A multi-scale network takes one file per
    scale. The file's metadata names the family and config, so `load_model` reads it back."""
    handle = _cpu_fp32(as_handle(model))
    path = Path(path)
    scale = handle.check_scale(scale)
    with atomic_path(path) as tmp:
        _export(handle, tmp, scale, opset)
        try:
            import onnx
        except ImportError as e:
            raise ConfigError("ONNX export needs the onnx package: pip install 'superres[onnx]'") from e
        proto = onnx.load(tmp)
        entry = proto.metadata_props.add()
        entry.key, entry.value = (
            METADATA_KEY,
            json.dumps({**(metadata or {}), "arch": handle.arch, "config": handle.config.to_dict(), "scale": scale}),
        )
        onnx.save(proto, tmp)
    return path
