"""`SRNet`: the base class of this project's own networks (EDSR, MDSR).

A network keeps its hyper-parameters in a frozen `config` dataclass (with `to_dict`/`from_dict`) and names its
family in `arch`; the family (family.py, registered in the network's file) answers what inference needs.
Code outside `models/` holds a `ModelHandle` (handle.py), not the network.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from superres.errors import ConfigError
from superres.models.family import get_family


class SRNet(nn.Module):
    """A super-resolution network: float (N, n_colors, H, W) in 0..rgb_range -> (N, n_colors, H*s, W*s).

    A network may produce several scales (`scales`, ascending); `forward(x, scale)` picks one, and a
    network with a single scale accepts scale=None.
    """

    arch: ClassVar[str] = ""
    config_class: ClassVar[type]  # the family's frozen config dataclass, with to_dict/from_dict
    config: Any
    metadata: dict  # what a weights file says about itself (training data, steps, PSNR); set by the loader

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(get_family(self.arch).scales(self.config))

    @property
    def scale(self) -> int:
        """The scale of a single-scale network (a multi-scale one has no single answer: see `scales`)."""
        return self.check_scale(None)

    @property
    def n_colors(self) -> int:
        return int(self.config.n_colors)

    @property
    def rgb_range(self) -> float:
        """White in the network's input and output, as its family states it (255.0 or 1.0)."""
        return float(get_family(self.arch).pixel_range(self.config))

    def check_scale(self, scale: int | None) -> int:
        """`scale`, or the only scale when None; an error naming the scales the network has otherwise."""
        if scale is None:
            if len(self.scales) > 1:
                raise ConfigError(f"this {self.arch} network produces x{', x'.join(map(str, self.scales))}; choose one")
            return next(iter(self.scales))
        if scale not in self.scales:
            raise ConfigError(f"this {self.arch} network produces x{', x'.join(map(str, self.scales))}, not x{scale}")
        return int(scale)

    def receptive_radius(self, scale: int | None = None) -> int | None:
        """LR pixels of context an output pixel at `scale` depends on, on each side (exact tiling)."""
        return get_family(self.arch).receptive_radius(self.config, self.check_scale(scale))

    def activation_bytes_per_pixel(self, scale: int | None = None) -> int:
        """About how many bytes of float32 activations one LR pixel costs at inference (tile budgets)."""
        return get_family(self.arch).activation_bytes_per_pixel(self.config, self.check_scale(scale))

    def describe(self) -> str:
        """One line on the architecture, e.g. 'EDSR x2, 16 blocks x 64 features, res_scale 1.0'."""
        return get_family(self.arch).describe(self.config)

    def part_key(self, key: str) -> str:
        """A state-dict key in family-neutral terms, so weights can move between families (`init_from`):
        'up.x{s}.*' for the upsampler of scale s, 'tail.*' for the last conv; other keys as they are."""
        return key

    def adopt(self, copied: list[str]) -> list[str]:
        """Called by `init_from` after it copied the tensors named `copied` into this network: a network whose
        trained tensors are derived from others (re-parameterised branches) makes the copies its own here, and
        one may fill parts no file had from those it has. Returns the keys it filled."""
        return []

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def conditions_of(model: Any) -> int:
    """How many condition values a network or model handle takes (0: none; a conditioned MSPAN's `conditions`)."""
    return int(getattr(getattr(model, "config", None), "conditions", 0) or 0)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters; the mean shifts are buffers and are not counted (as in the paper)."""
    return sum(p.numel() for p in model.parameters())
