"""`UpscaleOptions`: everything `superres upscale` can be told, with one spelling per option, checked once.

The command line, `superres.upscale`, `ImageUpscaler`, `serve`, `video`, folders and torchrun all build one
of these and pass it on.

    UpscaleOptions(scale=2.5)                       # any factor
    UpscaleOptions(width=1920, height=1080)         # an exact size
    UpscaleOptions(width=1920, model="edsr.pt")     # one side, the aspect kept
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from superres.errors import ConfigError
from superres.imaging.resize import METHODS
from superres.inference.backends import BACKENDS
from superres.inference.denoise import parse_denoise
from superres.inference.devices import PRECISIONS
from superres.inference.sizes import OutputSize
from superres.inference.upscaler import MIN_TILE
from superres.models.base import SRNet
from superres.models.handle import ModelHandle


@dataclass(frozen=True)
class UpscaleOptions:
    """How to upscale a picture.

    Output size: `scale` (any factor > 0), or `width` and/or `height` in pixels (one alone keeps the aspect).
    Neither: x2, or the model's only scale.
    What upscales: `model` (a handle, a superres network, a bundled name or preset, a weights or .onnx path;
    None: the bundled default), or `method` (an interpolation: 'bicubic', 'bilinear', ...) instead.
    `correct`: the correction threshold in gray levels (None: off). `denoise`: 'auto', 'auto+chain' (auto and the
    chain detector, docs/photos.md), a strength 0..1, or None:
    it blends a clean model with its photo counterpart (the bundled pair, or `model` with `denoise_model`, a
    network of the same architecture trained to remove noise and JPEG artefacts).
    How it runs: `backend` ('auto', 'torch', 'onnxruntime', 'openvino'), `device` ('auto', 'cpu', 'cuda', 'mps'),
    `precision` ('auto', 'fp32', 'bf16', 'fp16', or 'int8': a bundled model that ships quantised files, OpenVINO only),
    `threads` (CPU threads; None: the default), `tile` (LR tile side; 0 = none, None = automatic),
    `tile_overlap` (LR margin; below the receptive radius means the radius),
    `self_ensemble` (average the 8 flips and rotations).
    """

    scale: float | None = None
    width: int | None = None
    height: int | None = None
    model: ModelHandle | SRNet | str | os.PathLike | None = None
    method: str | None = None
    correct: float | None = None
    denoise: float | str | None = "auto"
    denoise_model: ModelHandle | SRNet | str | os.PathLike | None = None  # the model at denoise 1 (same architecture)
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    self_ensemble: bool = False

    def __post_init__(self) -> None:
        for name in ("backend", "device", "precision"):  # None: the default, as the lower levels take it
            if getattr(self, name) is None:
                object.__setattr__(self, name, "auto")
        self._check_size()
        self._check_what()
        self._check_how()

    def _check_size(self) -> None:
        if self.scale is not None and (isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real)):
            raise ConfigError(f"scale must be a number > 0, got {self.scale!r}")
        if self.scale is not None and (self.width is not None or self.height is not None):
            raise ConfigError("give a scale or an output width/height, not both")
        if self.scale is not None or self.width is not None or self.height is not None:
            OutputSize(None if self.scale is None else float(self.scale), self.width, self.height)  # checks them

    def _check_what(self) -> None:
        if self.model is not None and self.method is not None:
            raise ConfigError("give a model or an interpolation method, not both")
        if self.method is not None:
            if self.method not in METHODS:
                raise ConfigError(f"unknown method '{self.method}'; choose from {', '.join(sorted(METHODS))}")
            if self.output is None:
                raise ConfigError("an interpolation method needs a scale or an output size")
            if self.correct is not None:
                raise ConfigError("the correction applies to model outputs; it needs a model, not a method")
        if self.correct is not None and not (
            isinstance(self.correct, numbers.Real) and not isinstance(self.correct, bool) and self.correct >= 0
        ):
            raise ConfigError(f"the correction threshold must be a number >= 0, got {self.correct!r}")
        object.__setattr__(self, "denoise", parse_denoise(self.denoise) if self.method is None else None)
        if self.denoise_model is not None and (self.model is None or self.denoise is None):
            raise ConfigError(
                "denoise_model blends with a model of yours: give model too, and denoise 'auto' (or 'auto+chain') "
                "or 0..1"
            )

    def _check_how(self) -> None:
        if self.backend != "auto" and self.backend not in BACKENDS:
            raise ConfigError(f"backend must be auto, {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.precision not in ("auto", *PRECISIONS, "int8"):
            raise ConfigError(f"precision must be auto, {', '.join(PRECISIONS)} or int8; got {self.precision!r}")
        if not (isinstance(self.device, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device)):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps; got {self.device!r}")
        if not isinstance(self.self_ensemble, bool):
            raise ConfigError(f"self_ensemble must be True or False, got {self.self_ensemble!r}")
        for name, least in (("threads", 1), ("tile", 0), ("tile_overlap", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"{name} must be a whole number >= {least}, got {value!r}")
        if self.tile is not None and 0 < self.tile < MIN_TILE:
            raise ConfigError(f"tile must be 0 (no tiling) or at least {MIN_TILE} LR pixels, got {self.tile}")

    @property
    def output(self) -> OutputSize | None:
        """The output size asked for, or None (the model's own scale, else 2)."""
        if self.scale is None and self.width is None and self.height is None:
            return None
        return OutputSize(None if self.scale is None else float(self.scale), self.width, self.height)

    def runner_options(self) -> dict[str, Any]:
        """What `Upscaler` takes from these options."""
        return dict(
            backend=self.backend,
            device=self.device,
            precision=self.precision,
            threads=self.threads,
            tile=self.tile,
            overlap=self.tile_overlap,
            self_ensemble=self.self_ensemble,
        )

    def but(self, **changes: Any) -> UpscaleOptions:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)
