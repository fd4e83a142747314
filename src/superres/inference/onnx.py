"""ONNX export (dynamic height and width) and an onnxruntime backend with the same tiling as PyTorch's.

Needs the optional packages: pip install 'superres[onnx]' (onnx to export, onnxruntime to run).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from superres.errors import CheckpointError, ConfigError
from superres.imaging.files import atomic_path
from superres.inference.upscaler import Upscaler
from superres.models.base import SRNet
from superres.models.checkpoints import METADATA_KEY, build_from_dict


class _AtScale(torch.nn.Module):
    """A network fixed to one of its scales: what one ONNX file holds."""

    def __init__(self, model: SRNet, scale: int) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.scale)


def export_onnx(
    model: SRNet, path: str | os.PathLike, scale: int | None = None, opset: int = 17, metadata: dict | None = None
) -> Path:
    """Write `model` at `scale` (None: its only scale) as ONNX with input 'lr' (N, C, H, W) and output 'sr',
    H and W dynamic, float32 0..255. A multi-scale network takes one file per scale."""
    path = Path(path)
    model = model.eval().float().cpu()
    scale = model.check_scale(scale)
    dummy = torch.rand(1, model.n_colors, 32, 32) * 255
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _AtScale(model, scale),
                (dummy,),
                tmp,
                input_names=["lr"],
                output_names=["sr"],
                opset_version=opset,
                dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "h_out", 3: "w_out"}},
                dynamo=False,
            )
        try:
            import onnx
        except ImportError as e:
            raise ConfigError("ONNX export needs the onnx package: pip install 'superres[onnx]'") from e
        proto = onnx.load(tmp)
        entry = proto.metadata_props.add()
        entry.key, entry.value = (
            METADATA_KEY,
            json.dumps({**(metadata or {}), "arch": model.arch, "config": model.config.to_dict(), "scale": scale}),
        )
        onnx.save(proto, tmp)
    return path


class OnnxUpscaler(Upscaler):
    """Upscaler whose network is an ONNX file run by onnxruntime (CPU), tiled exactly like PyTorch's."""

    def __init__(
        self,
        path: str | os.PathLike,
        tile: int | None = None,
        overlap: int | None = None,
        self_ensemble: bool = False,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ConfigError("the onnxruntime backend needs onnxruntime: pip install 'superres[onnx]'") from e
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0]})") from e
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if not raw:
            raise CheckpointError(f"{path}: not a superres ONNX export (no '{METADATA_KEY}' metadata)")
        meta = json.loads(raw)
        with torch.device("meta"):  # the architecture only: its config and receptive field
            self.model = build_from_dict(meta.get("arch", "edsr"), meta["config"])
        self.scale = self.model.check_scale(meta.get("scale"))
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self._set_tiling(tile, overlap, self_ensemble, None)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        lr = np.ascontiguousarray(x.float().numpy())
        return torch.from_numpy(self.session.run(["sr"], {"lr": lr})[0])
