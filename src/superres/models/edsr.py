"""EDSR (Lim et al., CVPR-W 2017), laid out so that state-dict keys equal the official EDSR-PyTorch ones.

Read top to bottom: the mean shift, the residual block, the upsampler, the config, the model.

    x (N, C, H, W), 0..rgb_range
      -> sub_mean -> head.0 (conv C->F)
      -> body.0 .. body.{B-1} (ResBlocks) -> body.{B} (conv F->F)  + global skip
      -> tail.0 (upsampler: conv F->4F + PixelShuffle(2), repeated; or conv F->9F + PixelShuffle(3))
      -> tail.1 (conv F->C) -> add_mean
    y (N, C, H*s, W*s), 0..rgb_range (not clipped)
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.family import Family, FamilyConfig, StateDict, register_family

# DIV2K's RGB mean, as in EDSR-PyTorch (fraction of the range).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
# The same mean seen through BT.601 luma weights, used for one-channel (grayscale) models.
DIV2K_GRAY_MEAN = (round(0.299 * 0.4488 + 0.587 * 0.4371 + 0.114 * 0.4040, 4),)

SUPPORTED_SCALES = (2, 3, 4, 8)


# Scales whose last conv runs in fp32 under autocast. bf16 has 8 significant bits, so an output value
# near 100 rounds by up to 0.25 gray level: at x2 (and the factors below 2 it serves), where outputs are
# accurate to better than that, an all-bf16 network cost up to 0.025 dB (Set5 x1.5) and the fp32 tail
# brings it to 0.002; at x3 and x4 the bf16 tail costs at most 0.009 dB (README, "Bundled models"), and an
# fp32 tail at full output resolution would cost time those scales cannot spare (README, "Speed").
FULL_PRECISION_TAIL_SCALES = (2,)


def full_precision(x: torch.Tensor, enabled: bool = True):
    """A context that turns autocast off (when `enabled`), for layers whose outputs are pixel values."""
    if enabled and x.device.type in ("cpu", "cuda", "mps"):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()  # e.g. the meta device of summaries


def to_autocast(x: torch.Tensor) -> torch.Tensor:
    """x in the autocast dtype where autocast is on, so that the residual stream after a full-precision
    layer stays half precision (an fp32 skip would turn every residual add, and so the stream, fp32)."""
    if x.device.type in ("cpu", "cuda", "mps") and torch.is_autocast_enabled(x.device.type):
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x


def conv3x3(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A 'same' convolution with bias (3x3 unless told; MDSR's pre-processing uses 5x5)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True)


class MeanShift(nn.Module):
    """Adds (sign=+1) or subtracts (sign=-1) rgb_range * mean per channel.

    Kept as a frozen 1x1 convolution with buffers `weight` and `bias`, as in EDSR-PyTorch, so the
    keys `sub_mean.weight/bias` and `add_mean.weight/bias` load unchanged. Buffers are not
    parameters: they never train and do not count in parameter totals.
    """

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, rgb_range: float, mean: tuple[float, ...], sign: int) -> None:
        super().__init__()
        n = len(mean)
        self.register_buffer("weight", torch.eye(n).view(n, n, 1, 1))
        self.register_buffer("bias", sign * rgb_range * torch.tensor(mean, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


class ResBlock(nn.Module):
    """conv-ReLU-conv without batch norm; the branch is scaled by res_scale before the add."""

    def __init__(self, n_feats: int, res_scale: float, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats, kernel_size), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats, kernel_size)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return res + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: x2^k as k times (conv F->4F, PixelShuffle(2)); x3 as conv F->9F, PixelShuffle(3)."""

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        elif scale in (2, 4, 8):
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        else:
            raise ValueError(f"scale must be one of {SUPPORTED_SCALES}, got {scale}")
        super().__init__(*layers)


def check_body_config(config) -> None:
    """Checks the fields EDSR and MDSR configs share and fills in rgb_mean (a frozen dataclass)."""
    if config.n_feats < 1 or config.n_resblocks < 0:
        raise ConfigError(f"n_feats must be >= 1 and n_resblocks >= 0, got {config.n_feats} and {config.n_resblocks}")
    if config.n_colors not in (1, 3):
        raise ConfigError(f"n_colors must be 1 (grayscale) or 3 (RGB), got {config.n_colors}")
    if not config.res_scale > 0:
        raise ConfigError(f"res_scale must be > 0, got {config.res_scale}")
    mean = (
        config.rgb_mean if config.rgb_mean is not None else DIV2K_RGB_MEAN if config.n_colors == 3 else DIV2K_GRAY_MEAN
    )
    values = tuple(float(m) for m in mean)
    object.__setattr__(config, "rgb_mean", values)
    if len(values) != config.n_colors:
        raise ConfigError(f"rgb_mean needs {config.n_colors} values, got {len(values)}")


def mean_of(config) -> tuple[float, ...]:
    """The config's per-channel mean (filled in by check_body_config when it was built)."""
    assert config.rgb_mean is not None
    return tuple(config.rgb_mean)


def weight_dtype(layers: nn.Sequential, index: int) -> torch.dtype:
    """The dtype of the weights of the convolution `layers[index]`."""
    return cast(nn.Conv2d, layers[index]).weight.dtype


@dataclass(frozen=True)
class EDSRConfig(FamilyConfig):
    scale: int = 2
    n_feats: int = 64
    n_resblocks: int = 16
    # 0.1 for the wide (256-feature) EDSR: without it training that model is unstable (paper, sec. 3.1).
    res_scale: float = 1.0
    n_colors: int = 3
    # Pixel values the network sees run 0..rgb_range; the official models use 255.
    rgb_range: float = 255.0
    # Per-channel mean as a fraction of rgb_range; None means DIV2K's (or its luma for n_colors=1).
    rgb_mean: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.scale not in SUPPORTED_SCALES:
            raise ConfigError(f"scale must be one of {', '.join(map(str, SUPPORTED_SCALES))}, got {self.scale}")
        check_body_config(self)


class EDSR(SRNet):
    """Enhanced Deep Residual Network for single-image super-resolution.

    Input and output are float tensors (N, n_colors, H, W) in 0..rgb_range; the output is H*scale x W*scale
    and is not clipped.
    """

    arch = "edsr"
    config_class = EDSRConfig

    def __init__(self, config: EDSRConfig | None = None, **kwargs) -> None:
        super().__init__()
        config = config if config is not None else EDSRConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f = config.n_colors, config.n_feats
        self.sub_mean = MeanShift(config.rgb_range, mean_of(config), sign=-1)
        self.head = nn.Sequential(conv3x3(c, f))
        self.body = nn.Sequential(*[ResBlock(f, config.res_scale) for _ in range(config.n_resblocks)], conv3x3(f, f))
        self.tail = nn.Sequential(Upsampler(config.scale, f), conv3x3(f, c))
        self.add_mean = MeanShift(config.rgb_range, mean_of(config), sign=+1)

    @property
    def scales(self) -> tuple[int, ...]:
        return (self.config.scale,)

    def part_key(self, key: str) -> str:
        if key.startswith("tail.0."):
            return f"up.x{self.config.scale}." + key[len("tail.0.") :]
        if key.startswith("tail.1."):
            return "tail." + key[len("tail.1.") :]
        return key

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        self.check_scale(scale)
        with full_precision(x):
            x = self.head(self.sub_mean(x.to(weight_dtype(self.head, 0))))  # (N, F, H, W)
        x = to_autocast(x)
        x = self.body(x) + x  # global skip
        x = self.tail[0](x)  # upsampler: (N, F, H*s, W*s)
        exact = self.config.scale in FULL_PRECISION_TAIL_SCALES
        with full_precision(x, exact):
            x = x.to(weight_dtype(self.tail, 1)) if exact else x
            return self.add_mean(self.tail[1](x))  # (N, C, H*s, W*s)


# ---------------------------------------------------------------------------------------------- the family
# Shared with MDSR: reading the architecture off an official state dict's shapes.


def count_blocks(state: StateDict, pattern: str, what: str) -> int:
    """How many numbered blocks `pattern` (one group: the number) finds; they must run 0..n-1."""
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    if found != set(range(len(found))):
        raise CheckpointError(f"{what} are not numbered 0..{len(found) - 1}: found {sorted(found)}")
    return len(found)


def upsampler_scale(state: StateDict, prefix: str, n_feats: int) -> int:
    """The factor of an upsampler whose convs are `{prefix}{i}.weight` (conv + shuffle, repeated)."""
    convs = sorted(int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.weight$", k)))
    if not convs:
        raise CheckpointError(f"no upsampler found (keys '{prefix}*')")
    out = state[f"{prefix}{convs[0]}.weight"].shape[0]
    if out == 9 * n_feats and len(convs) == 1:
        return 3
    if out == 4 * n_feats:
        return 2 ** len(convs)
    raise CheckpointError(f"upsampler conv {prefix}{convs[0]} has {out} outputs; expected 4x or 9x n_feats ({n_feats})")


def body_settings(state: StateDict, meta: dict[str, Any]) -> dict[str, Any]:
    """The fields EDSR and MDSR configs share, from the shapes (and the file's own config, where it has one).
    Without mean-shift tensors, the mean is the file's config's or DIV2K's (the official default)."""
    n_feats, n_colors = (int(n) for n in state["head.0.weight"].shape[:2])
    saved = dict(meta.get("config", {}))
    rgb_range = float(saved.get("rgb_range", 255.0))
    rgb_mean = saved.get("rgb_mean")
    if rgb_mean is None and "sub_mean.bias" in state and state["sub_mean.bias"].numel() == n_colors:
        rgb_mean = tuple(round(-float(b) / rgb_range, 6) for b in state["sub_mean.bias"])
    return dict(
        n_feats=n_feats,
        n_resblocks=count_blocks(state, r"body\.(\d+)\.body\.0\.weight$", "residual blocks"),
        n_colors=n_colors,
        # the wide model is the only official one trained with a residual scale (0.1)
        res_scale=float(saved.get("res_scale", 0.1 if n_feats == 256 else 1.0)),
        rgb_range=rgb_range,
        rgb_mean=tuple(rgb_mean) if rgb_mean else None,
    )


def fill_mean_shifts(net: nn.Module, state: StateDict) -> StateDict:
    """`state` with the network's own mean-shift buffers where the file has none (BasicSR keeps the mean
    outside the state dict; so do official files saved without them)."""
    own = net.state_dict()
    missing = {k: v for k, v in own.items() if k.startswith(("sub_mean.", "add_mean.")) and k not in state}
    return {**state, **missing}


class SRNetFamily(Family):
    """What EDSR and MDSR share: 0..rgb_range pixels with the mean inside the network, every precision."""

    def pixel_range(self, config: Any) -> float:
        return float(config.rgb_range)

    def load(self, net: nn.Module, state: StateDict) -> None:
        super().load(net, fill_mean_shifts(net, state))


_BASICSR_RENAMES = [
    (re.compile(r"^conv_first\."), "head.0."),
    (re.compile(r"^body\.(\d+)\.conv1\."), r"body.\1.body.0."),
    (re.compile(r"^body\.(\d+)\.conv2\."), r"body.\1.body.2."),
    (re.compile(r"^upsample\."), "tail.0."),
    (re.compile(r"^conv_last\."), "tail.1."),
]


@register_family
class EDSRFamily(SRNetFamily):
    """EDSR in the official EDSR-PyTorch layout (`head.0`, `body.{i}.body.{0,2}`, `tail.0.*`, `tail.1`, with or
    without `sub_mean`/`add_mean`) and in BasicSR's (`conv_first`, `body.{i}.conv1/2`, `conv_after_body`,
    `upsample.*`, `conv_last`)."""

    name = "edsr"
    config_class = EDSRConfig
    key_patterns = (r"head\.0\.weight", r"body\.\d+\.weight", r"tail\.0\.0\.weight", r"tail\.1\.weight")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "edsr": dict(n_feats=256, n_resblocks=32, res_scale=0.1),  # the paper's large model, 40.7M params at x2
        "edsr-baseline": dict(n_feats=64, n_resblocks=16, res_scale=1.0),  # the paper's baseline, 1.37M at x2
        "edsr-medium": dict(n_feats=48, n_resblocks=12, res_scale=1.0),  # the first bundled models, ~0.6M
        "edsr-small": dict(n_feats=32, n_resblocks=8, res_scale=1.0),  # CPU-friendly, ~0.2M params
        "edsr-tiny": dict(n_feats=16, n_resblocks=4, res_scale=1.0),  # for tests and quick experiments
    }

    def rename(self, state: StateDict) -> StateDict:
        if "conv_first.weight" not in state or "conv_after_body.weight" not in state:
            return state
        if not any(re.fullmatch(r"body\.\d+\.conv1\.weight", k) for k in state):
            return state  # not BasicSR's EDSR blocks (SwinIR's classical layout shares the other names)
        n_blocks = len({m.group(1) for k in state if (m := re.match(r"body\.(\d+)\.conv1\.", k))})

        def official(key: str) -> str:
            if key.startswith("conv_after_body."):
                return f"body.{n_blocks}." + key[len("conv_after_body.") :]
            for pattern, repl in _BASICSR_RENAMES:
                if pattern.match(key):
                    return pattern.sub(repl, key)
            return key

        return {official(k): v for k, v in state.items()}

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> EDSRConfig:
        settings = body_settings(state, meta)
        return EDSRConfig(scale=upsampler_scale(state, "tail.0.", settings["n_feats"]), **settings)

    def build(self, config: EDSRConfig) -> EDSR:
        return EDSR(config)

    def scales(self, config: EDSRConfig) -> tuple[int, ...]:
        return (config.scale,)

    def receptive_radius(self, config: EDSRConfig, scale: int) -> int:
        """One LR pixel per 3x3 conv at LR resolution, and at most one per conv after the first shuffle."""
        lr_convs = 1 + 2 * config.n_resblocks + 1 + 1  # head, blocks, body end, first upsampler conv
        return lr_convs + 1 + (int(math.log2(scale)) - 1 if scale != 3 else 0)  # later upsampler convs + tail

    def activation_bytes_per_pixel(self, config: EDSRConfig, scale: int) -> int:
        # about four live feature maps at LR, the upsampler's 4x (9x) map, and the output: float32
        f = config.n_feats
        return 4 * (4 * f + (9 if scale == 3 else 4) * f + 2 * config.n_colors * scale**2)

    def describe(self, config: EDSRConfig) -> str:
        c = config
        return f"EDSR x{c.scale}, {c.n_resblocks} blocks x {c.n_feats} features, res_scale {c.res_scale}"

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> EDSRConfig:
        if scales is not None and len(scales) != 1:
            raise ConfigError(
                f"a single-scale EDSR cannot make x{', x'.join(map(str, scales))} in one network; use an MDSR preset "
                f"(e.g. 'mdsr-medium')"
            )
        return EDSRConfig(scale=scales[0] if scales else 2, n_colors=n_colors, **settings)
