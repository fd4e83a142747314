"""`ModelHandle`: a network together with what inference needs to know about it.

Everything outside `models/` holds a handle, never a network's insides: its scales and colours, the pixel
range it takes, its receptive radius (exact tiling), the precisions it tolerates, its name, parameter count
and file metadata, and `run(x, scale)`. The family (family.py) answers each question for its own networks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superres.errors import ConfigError
from superres.models.family import Family, get_family


@dataclass(eq=False)
class ModelHandle:
    """A network of a registered family, with its config, name and file metadata.

    `net` is the module (for training, export and summaries); `run(x, scale)` runs it in its own pixel range
    (`pixel_range`); inference converts pixels to that range and back. `onnx` is set for a model read from an
    ONNX export: `net` is then built on the meta device (it answers questions, it does not run).
    """

    net: nn.Module
    family: Family
    config: Any
    name: str = ""  # a bundled name, a preset, or the file it came from
    metadata: dict[str, Any] = field(default_factory=dict)  # what the weights file says about itself
    onnx: Path | None = None  # the ONNX file this handle describes, if it came from one
    fixed_scales: tuple[int, ...] | None = None  # an export holds its network at one scale only

    # ------------------------------------------------------------------ what the network is

    @property
    def arch(self) -> str:
        return self.family.name

    @property
    def scales(self) -> tuple[int, ...]:
        """The integer scales the network produces, ascending."""
        return self.fixed_scales or tuple(self.family.scales(self.config))

    @property
    def scale(self) -> int:
        """The scale of a single-scale network (a multi-scale one has no single answer: see `scales`)."""
        return self.check_scale(None)

    @property
    def n_colors(self) -> int:
        return self.family.n_colors(self.config)

    @property
    def pixel_range(self) -> float:
        """White in the network's input and output: 255.0 or 1.0."""
        return float(self.family.pixel_range(self.config))

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions the model keeps its accuracy in (an ONNX export: fp32, as onnxruntime runs it)."""
        return ("fp32",) if self.onnx is not None else tuple(self.family.precisions(self.config))

    @property
    def openvino_precisions(self) -> tuple[str, ...]:
        """The precisions the model keeps its accuracy in under OpenVINO (an ONNX export: fp32)."""
        return ("fp32",) if self.onnx is not None else tuple(self.family.openvino_precisions(self.config))

    @property
    def export_min_side(self) -> int:
        """The smallest LR side the model's ONNX export takes."""
        return int(self.family.export_min_side(self.config))

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def check_scale(self, scale: int | None) -> int:
        """`scale`, or the only scale when None; ConfigError naming the scales the network has otherwise."""
        scales = self.scales
        listed = "x" + ", x".join(map(str, scales))
        if scale is None:
            if len(scales) > 1:
                raise ConfigError(f"this {self.arch} network produces {listed}; choose one")
            return next(iter(scales))
        if scale not in scales:
            raise ConfigError(f"this {self.arch} network produces {listed}, not x{scale}")
        return int(scale)

    def receptive_radius(self, scale: int | None = None) -> int | None:
        """LR pixels of context an output pixel depends on, on each side: tiles cut with this margin are exact.
        None: the family states no radius, and tiles are approximate."""
        return self.family.receptive_radius(self.config, self.check_scale(scale))

    def activation_bytes_per_pixel(self, scale: int | None = None) -> int:
        return self.family.activation_bytes_per_pixel(self.config, self.check_scale(scale))

    def describe(self) -> str:
        return self.family.describe(self.config)

    # ------------------------------------------------------------------ running it

    @property
    def device(self) -> torch.device:
        """Where the network's weights are (an ONNX export: the CPU, where onnxruntime runs it)."""
        first = next(iter(self.net.parameters()), None)
        if self.onnx is not None or first is None:
            return torch.device("cpu")
        return first.device

    def _refuse_onnx(self, what: str) -> None:
        if self.onnx is not None:
            raise ConfigError(f"{self.onnx} is an ONNX export: it has no PyTorch weights to {what}")

    def run(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """(N, C, H, W) in 0..pixel_range -> (N, C, H*s, W*s), not clipped."""
        if self.onnx is not None:
            raise ConfigError(f"{self.onnx} is an ONNX export: it runs with the onnxruntime backend")
        return self.family.forward(self.net, x, self.check_scale(scale))

    __call__ = run

    def copy_to(self, device: torch.device | str) -> ModelHandle:
        """A handle whose network is a copy on `device` (this one is left where it is)."""
        self._refuse_onnx("copy")
        return replace(self, net=copy.deepcopy(self.net).to(device))

    # ------------------------------------------------------------------ as a module (training, tests)

    def state_dict(self) -> dict[str, torch.Tensor]:
        self._refuse_onnx("read")
        return self.net.state_dict()

    def eval(self) -> ModelHandle:
        self.net.eval()
        return self

    def to(self, *args: Any, **kwargs: Any) -> ModelHandle:
        """Move the network itself, as nn.Module.to does (in place); returns the handle. An ONNX export stays on
        the CPU: moving it there does nothing, anywhere else is a ConfigError."""
        if self.onnx is not None:
            target = args[0] if args else kwargs.get("device", "cpu")
            if isinstance(target, (str, torch.device)) and torch.device(target).type != "cpu":
                raise ConfigError(f"{self.onnx} is an ONNX export: it runs on the CPU only, not on '{target}'")
            return self
        self.net.to(*args, **kwargs)
        return self

    def parameters(self):
        return self.net.parameters()


def as_handle(model: ModelHandle | nn.Module, name: str = "") -> ModelHandle:
    """A handle for a handle (itself) or for a network of a registered family that keeps its config in
    `.config` and names its family in `.arch` (this project's networks, e.g. EDSR or a `create_model` result)."""
    if isinstance(model, ModelHandle):
        return model
    arch = getattr(model, "arch", None)
    config = getattr(model, "config", None)
    if not isinstance(model, nn.Module) or not arch or config is None:
        raise ConfigError(
            f"expected a model handle (superres.load_model) or a superres network, got {type(model).__name__}"
        )
    return ModelHandle(model, get_family(arch), config, name, dict(getattr(model, "metadata", {}) or {}))
