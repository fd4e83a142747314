"""SRVGGNetCompact: Real-ESRGAN's "Compact" network (realesr-general-x4v3, realesr-animevideov3).

State-dict keys equal Real-ESRGAN's (`realesrgan/archs/srvgg_arch.py`), so its `.pth` files load unchanged.
A plain stack of 3x3 convs at LR, every conv but the last followed by an activation, one pixel shuffle, and the
nearest-upsampled input added:

    x (N, C, H, W), 0..1
      -> body.0 (conv C->F), body.1 (activation)
      -> body.{2i+2} (conv F->F), body.{2i+3} (activation), i = 0 .. n_convs-1
      -> body.{2n+2} (conv F->C*s*s) -> PixelShuffle(s)
      -> + nearest x s of x
    y (N, C, H*s, W*s), 0..1 (not clipped)

The activation is PReLU with F weights in every published model (the official class's default, act_type='prelu');
the class also offers ReLU and LeakyReLU(0.1), which have no weights, so a file of either shows only its convs and
cannot say which it is. Such a file is read as LeakyReLU(0.1) unless its superres metadata names the activation
(a warning says so). Receptive radius: exact, one LR pixel per 3x3 conv, n_convs + 2. Precisions: all three; the
nearest-upsampled input is added in the input's precision, so half precision rounds only the learned residual
(realesr-animevideov3 in bf16: Set5 x4 28.21 against 28.23 in fp32).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.family import Family, FamilyConfig, StateDict, register_family

log = logging.getLogger(__name__)

ACTIVATIONS = ("prelu", "leakyrelu", "relu")
# what a file without activation weights is read as (module docstring)
WEIGHTLESS_DEFAULT = "leakyrelu"
MAX_SCALE = 8


def activation(kind: str, n_feats: int) -> nn.Module:
    """The official class's activations: PReLU with one weight per feature, LeakyReLU(0.1), ReLU."""
    if kind == "prelu":
        return nn.PReLU(num_parameters=n_feats)
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    return nn.ReLU(inplace=True)


@dataclass(frozen=True)
class SRVGGConfig(FamilyConfig):
    scale: int = 4
    n_feats: int = 64
    n_convs: int = 16  # F->F convs between the first and the last ("num_conv"): 16 animevideov3, 32 general-x4v3
    n_colors: int = 3
    act: str = "prelu"

    def __post_init__(self) -> None:
        if isinstance(self.n_feats, bool) or not isinstance(self.n_feats, int) or self.n_feats < 1:
            raise ConfigError(f"n_feats must be a positive integer, got {self.n_feats!r}")
        if isinstance(self.n_convs, bool) or not isinstance(self.n_convs, int) or self.n_convs < 0:
            raise ConfigError(f"n_convs must be an integer >= 0, got {self.n_convs!r}")
        if self.n_colors not in (1, 3):
            raise ConfigError(f"n_colors must be 1 (grayscale) or 3 (RGB), got {self.n_colors}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not 1 <= self.scale <= MAX_SCALE:
            raise ConfigError(f"scale must be an integer 1..{MAX_SCALE}, got {self.scale!r}")
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"act must be one of {', '.join(ACTIVATIONS)}, got '{self.act}'")


class SRVGGNetCompact(SRNet):
    """Real-ESRGAN's compact network: (N, C, H, W) in 0..1 -> (N, C, H*s, W*s) in 0..1, not clipped."""

    arch = "srvgg"
    config_class = SRVGGConfig

    def __init__(self, config: SRVGGConfig | None = None, **kwargs) -> None:
        super().__init__()
        config = config if config is not None else SRVGGConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f, s = config.n_colors, config.n_feats, config.scale
        layers: list[nn.Module] = [nn.Conv2d(c, f, 3, padding=1), activation(config.act, f)]
        for _ in range(config.n_convs):
            layers += [nn.Conv2d(f, f, 3, padding=1), activation(config.act, f)]
        layers.append(nn.Conv2d(f, c * s * s, 3, padding=1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(s)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        s = self.check_scale(scale)
        out = x
        for layer in self.body:
            out = layer(out)
        # the network learns the residual over nearest-neighbour upscaling (added in the input's precision)
        return self.upsampler(out) + F.interpolate(x, scale_factor=s, mode="nearest")


# ---------------------------------------------------------------------------------------------- the family

_KEY = re.compile(r"body\.(\d+)\.(weight|bias)$")


def _layout(state: StateDict) -> tuple[dict[int, dict[str, torch.Tensor]], int]:
    """The tensors by body index, and the last index; CheckpointError if a key is not `body.{i}.weight/bias`."""
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        m = _KEY.fullmatch(key)
        if m is None:
            raise CheckpointError(f"'{key}' is not an SRVGGNetCompact key (body.{{i}}.weight or .bias)")
        layers.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not layers:
        raise CheckpointError("no 'body.{i}' tensors")
    return layers, max(layers)


def _conv(layers: dict[int, dict[str, torch.Tensor]], i: int) -> tuple[int, int]:
    """(out, in) channels of body.i, a biased 3x3 conv, or CheckpointError."""
    weight = layers.get(i, {}).get("weight")
    if weight is None or "bias" not in layers[i]:
        raise CheckpointError(f"body.{i} should be a conv with weight and bias")
    if weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise CheckpointError(f"body.{i}.weight has shape {tuple(weight.shape)}; expected a 3x3 conv weight")
    return int(weight.shape[0]), int(weight.shape[1])


def _shape_config(state: StateDict) -> tuple[int, int, int, int, bool]:
    """(n_feats, n_colors, n_convs, scale, has activation weights) from the shapes, or CheckpointError."""
    layers, last = _layout(state)
    n_feats, n_colors = _conv(layers, 0)
    if n_colors not in (1, 3):
        raise CheckpointError(f"body.0.weight takes {n_colors} channels; only 1 (grayscale) and 3 (RGB) are supported")
    if last < 2 or last % 2:
        raise CheckpointError(f"the last layer is body.{last}; expected an even index >= 2 (a conv)")
    out, into = _conv(layers, last)
    scale = math.isqrt(out // n_colors)
    if into != n_feats or out != n_colors * scale * scale or not 1 <= scale <= MAX_SCALE:
        shape = tuple(layers[last]["weight"].shape)
        raise CheckpointError(f"body.{last}.weight has shape {shape}; expected ({n_colors}*s*s, {n_feats}, 3, 3)")
    for i in range(2, last, 2):
        if _conv(layers, i) != (n_feats, n_feats):
            raise CheckpointError(
                f"body.{i}.weight has shape {tuple(layers[i]['weight'].shape)}; expected ({n_feats}, {n_feats}, 3, 3)"
            )
    acts = [layers.get(i) for i in range(1, last, 2)]
    with_weights = [a is not None for a in acts]
    if any(with_weights) and not all(with_weights):
        missing = next(2 * n + 1 for n, present in enumerate(with_weights) if not present)
        raise CheckpointError(f"body.{missing}.weight is missing: the other activations are PReLUs")
    for i in range(1, last, 2):
        if i in layers and (set(layers[i]) != {"weight"} or tuple(layers[i]["weight"].shape) != (n_feats,)):
            shapes = {k: tuple(v.shape) for k, v in layers[i].items()}
            raise CheckpointError(f"body.{i} should be a PReLU with {n_feats} weights, got {shapes}")
    return n_feats, n_colors, (last - 2) // 2, scale, all(with_weights)


@register_family
class SRVGGFamily(Family):
    """SRVGGNetCompact in Real-ESRGAN's layout: `body.{i}` only, convs at even indices, PReLU weights (or nothing,
    for weightless activations) at odd ones.

    Keys alone do not tell such a file from another plain `body.{i}` stack, so the shapes must fit too: every key is
    `body.{i}.weight` or `.bias`, body.0 a 3x3 conv from 1 or 3 channels, the last an even index whose conv makes
    colours x s*s. EDSR and MDSR files (`head.0`, `body.{i}.body.{j}`, `tail.*`) never pass; RRDBNet's
    (`body.{i}.rdb{k}.*`, `conv_*`) neither."""

    name = "srvgg"
    config_class = SRVGGConfig
    key_patterns = (r"body\.0\.weight", r"body\.0\.bias", r"body\.2\.weight")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "srvgg-compact": dict(n_feats=64, n_convs=32),  # realesr-general-x4v3: 1.21M params at x4
        "srvgg-animevideo": dict(n_feats=64, n_convs=16),  # realesr-animevideov3: 0.62M at x4
    }

    def recognize(self, state: StateDict) -> bool:
        if self.first_missing(state) is not None:
            return False
        try:
            layers, last = _layout(state)
            n_feats, n_colors = _conv(layers, 0)
            out, into = _conv(layers, last)
        except CheckpointError:
            return False
        scale = math.isqrt(out // n_colors) if n_colors else 0
        return (
            n_colors in (1, 3)
            and last >= 2
            and last % 2 == 0
            and into == n_feats
            and 1 <= scale <= MAX_SCALE
            and out == n_colors * scale * scale
        )

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> SRVGGConfig:
        n_feats, n_colors, n_convs, scale, prelu = _shape_config(state)
        if prelu:
            act = "prelu"
        else:
            saved = dict(meta.get("config", {})).get("act")
            act = saved if saved in ("leakyrelu", "relu") else WEIGHTLESS_DEFAULT
            if saved not in ("leakyrelu", "relu"):
                log.warning(
                    "this SRVGGNetCompact file has no activation weights (ReLU or LeakyReLU, not PReLU); "
                    "assuming LeakyReLU(0.1)"
                )
        return SRVGGConfig(scale=scale, n_feats=n_feats, n_convs=n_convs, n_colors=n_colors, act=act)

    def build(self, config: SRVGGConfig) -> SRVGGNetCompact:
        return SRVGGNetCompact(config)

    def receptive_radius(self, config: SRVGGConfig, scale: int) -> int:
        """One LR pixel per 3x3 conv, all of them at LR; the pixel shuffle and the nearest base add none."""
        return config.n_convs + 2

    def activation_bytes_per_pixel(self, config: SRVGGConfig, scale: int) -> int:
        # three F-channel maps at LR (a conv's input, its output, the activation's), then the last conv's output,
        # its shuffle, the nearest base and the sum: float32
        return 4 * (3 * config.n_feats + 4 * config.n_colors * scale**2)

    def describe(self, config: SRVGGConfig) -> str:
        act = {"prelu": "PReLU", "leakyrelu": "LeakyReLU(0.1)", "relu": "ReLU"}[config.act]
        return f"SRVGGNetCompact x{config.scale}, {config.n_convs} convs x {config.n_feats} features, {act}"

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> SRVGGConfig:
        if scales is not None and len(scales) != 1:
            raise ConfigError(f"an SRVGGNetCompact makes one scale, not x{', x'.join(map(str, scales))}")
        return SRVGGConfig(scale=scales[0] if scales else 4, n_colors=n_colors, **settings)
