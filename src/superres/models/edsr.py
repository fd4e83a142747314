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
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from superres.models.base import SRNet

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
    from superres.errors import ConfigError  # local: keep the model file free of other imports

    if config.n_feats < 1 or config.n_resblocks < 0:
        raise ConfigError(f"n_feats must be >= 1 and n_resblocks >= 0, got {config.n_feats} and {config.n_resblocks}")
    if config.n_colors not in (1, 3):
        raise ConfigError(f"n_colors must be 1 (grayscale) or 3 (RGB), got {config.n_colors}")
    if not config.res_scale > 0:
        raise ConfigError(f"res_scale must be > 0, got {config.res_scale}")
    mean = (
        config.rgb_mean if config.rgb_mean is not None else DIV2K_RGB_MEAN if config.n_colors == 3 else DIV2K_GRAY_MEAN
    )
    object.__setattr__(config, "rgb_mean", tuple(float(m) for m in mean))
    if len(config.rgb_mean) != config.n_colors:
        raise ConfigError(f"rgb_mean needs {config.n_colors} values, got {len(config.rgb_mean)}")


@dataclass(frozen=True)
class EDSRConfig:
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
        from superres.errors import ConfigError  # local: keep the model file free of other imports

        if self.scale not in SUPPORTED_SCALES:
            raise ConfigError(f"scale must be one of {', '.join(map(str, SUPPORTED_SCALES))}, got {self.scale}")
        check_body_config(self)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rgb_mean"] = list(self.rgb_mean)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EDSRConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("rgb_mean") is not None:
            known["rgb_mean"] = tuple(known["rgb_mean"])
        return cls(**known)


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
        self.sub_mean = MeanShift(config.rgb_range, config.rgb_mean, sign=-1)
        self.head = nn.Sequential(conv3x3(c, f))
        self.body = nn.Sequential(*[ResBlock(f, config.res_scale) for _ in range(config.n_resblocks)], conv3x3(f, f))
        self.tail = nn.Sequential(Upsampler(config.scale, f), conv3x3(f, c))
        self.add_mean = MeanShift(config.rgb_range, config.rgb_mean, sign=+1)

    @property
    def scales(self) -> tuple[int, ...]:
        return (self.config.scale,)

    def receptive_radius(self, scale: int | None = None) -> int:
        """One LR pixel per 3x3 conv at LR resolution, and at most one per conv after the first shuffle."""
        self.check_scale(scale)
        c = self.config
        lr_convs = 1 + 2 * c.n_resblocks + 1 + 1  # head, blocks, body end, first upsampler conv
        return lr_convs + 1 + (int(math.log2(c.scale)) - 1 if c.scale != 3 else 0)  # later upsampler convs + tail

    def activation_bytes_per_pixel(self, scale: int | None = None) -> int:
        self.check_scale(scale)
        c = self.config
        # about four live feature maps at LR, the upsampler's 4x (9x) map, and the output: float32
        return 4 * (4 * c.n_feats + (9 if c.scale == 3 else 4) * c.n_feats + 2 * c.n_colors * c.scale**2)

    def describe(self) -> str:
        c = self.config
        return f"EDSR x{c.scale}, {c.n_resblocks} blocks x {c.n_feats} features, res_scale {c.res_scale}"

    def part_key(self, key: str) -> str:
        if key.startswith("tail.0."):
            return f"up.x{self.config.scale}." + key[len("tail.0.") :]
        if key.startswith("tail.1."):
            return "tail." + key[len("tail.1.") :]
        return key

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        self.check_scale(scale)
        with full_precision(x):
            x = self.head(self.sub_mean(x.to(self.head[0].weight.dtype)))  # (N, F, H, W)
        x = to_autocast(x)
        x = self.body(x) + x  # global skip
        x = self.tail[0](x)  # upsampler: (N, F, H*s, W*s)
        exact = self.config.scale in FULL_PRECISION_TAIL_SCALES
        with full_precision(x, exact):
            x = x.to(self.tail[1].weight.dtype) if exact else x
            return self.add_mean(self.tail[1](x))  # (N, C, H*s, W*s)
