"""IMDN (Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation Network", ACM MM
2019), laid out so that state-dict keys equal the official ones (DataParallel's `module.` prefix, which the
published files keep, is stripped by the loader).

Read top to bottom: the contrast-aware channel attention, the distillation block, the network, its config, the
family.

    x (N, C, H, W), 0..1, no mean shift
      -> fea_conv (3x3 C->F)
      -> IMDB1 .. IMDB{B}: each  c1 -> split(D | F-D) -> c2 -> split -> c3 -> split -> c4 (F-D -> D);
                                 cat of the four D-channel pieces -> cca -> c5 (1x1) + block input
      -> c.0 (1x1 over the B blocks' outputs side by side, B*F -> F) + LeakyReLU
      -> LR_conv (3x3) + fea_conv's output (long skip)
      -> upsampler.0 (3x3 F -> C*s*s) + PixelShuffle(s)
    y (N, C, H*s, W*s), 0..1 (not clipped)

The attention scales each channel by a function of that channel's mean and standard deviation over the whole
picture: every output pixel depends on every input pixel, so the family states no receptive radius (tiles are
approximate).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import full_precision, to_autocast
from superres.models.family import Family, FamilyConfig, StateDict, register_family

# The official blocks' LeakyReLU slope.
LEAKY_SLOPE = 0.05


def conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """A 'same' convolution with bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True)


class ContrastChannelAttention(nn.Module):
    """Contrast-aware channel attention: x * sigmoid(1x1 -> ReLU -> 1x1 (std + mean of each channel)).

    The statistics are population figures (divided by H*W) over the whole picture. They are computed in fp32
    whatever the autocast dtype: a half-precision sum of squares over a large picture loses its digits (bf16)
    or overflows (fp16).
    """

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            conv(channels, mid, 1), nn.ReLU(inplace=True), conv(mid, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = x.float()
        mean = stats.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        std = (stats - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()  # (N, C, 1, 1)
        return x * self.conv_du((std + mean).to(x.dtype))  # the 1x1 convs take x's dtype (autocast's, or the net's)


class IMDB(nn.Module):
    """The information multi-distillation block: three times a 3x3 conv whose first `distilled` channels are
    kept and whose rest go on, a last 3x3 conv to `distilled` channels, the four pieces fused by attention and a
    1x1 conv, plus the block's input."""

    def __init__(self, n_feats: int, distilled: int, cca_mid: int) -> None:
        super().__init__()
        rest = n_feats - distilled
        self.split = [distilled, rest]
        self.c1 = conv(n_feats, n_feats, 3)
        self.c2 = conv(rest, n_feats, 3)
        self.c3 = conv(rest, n_feats, 3)
        self.c4 = conv(rest, distilled, 3)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.c5 = conv(4 * distilled, n_feats, 1)
        self.cca = ContrastChannelAttention(4 * distilled, cca_mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, rest = torch.split(self.act(self.c1(x)), self.split, dim=1)  # (N, D, H, W), (N, F-D, H, W)
        d2, rest = torch.split(self.act(self.c2(rest)), self.split, dim=1)
        d3, rest = torch.split(self.act(self.c3(rest)), self.split, dim=1)
        d4 = self.c4(rest)
        distilled = torch.cat([d1, d2, d3, d4], dim=1)  # (N, 4D, H, W)
        return self.c5(self.cca(distilled)) + x


@dataclass(frozen=True)
class IMDNConfig(FamilyConfig):
    scale: int = 2
    n_feats: int = 64
    n_blocks: int = 6
    # Channels each distillation step keeps (the official network keeps a quarter of n_feats): c4's outputs.
    distilled: int = 16
    # Width inside the attention (n_feats / 16 in the official network).
    cca_mid: int = 4
    n_colors: int = 3

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ConfigError(f"scale must be >= 1, got {self.scale}")
        if self.n_blocks < 1 or self.n_feats < 2 or not 0 < self.distilled < self.n_feats or self.cca_mid < 1:
            raise ConfigError(
                f"IMDN needs n_blocks >= 1 and 0 < distilled < n_feats, got {self.n_blocks} blocks, "
                f"{self.n_feats} features, {self.distilled} distilled"
            )
        if self.n_colors not in (1, 3):
            raise ConfigError(f"n_colors must be 1 or 3, got {self.n_colors}")


class IMDN(SRNet):
    """The information multi-distillation network: (N, C, H, W) in 0..1 -> (N, C, H*s, W*s), not clipped."""

    arch = "imdn"
    config_class = IMDNConfig

    def __init__(self, config: IMDNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else IMDNConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f, s = config.n_colors, config.n_feats, config.scale
        self.fea_conv = conv(c, f, 3)
        self.block_names = [f"IMDB{i}" for i in range(1, config.n_blocks + 1)]  # the official attribute names
        for name in self.block_names:
            self.add_module(name, IMDB(f, config.distilled, config.cca_mid))
        self.c = nn.Sequential(conv(f * config.n_blocks, f, 1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        self.LR_conv = conv(f, f, 3)
        self.upsampler = nn.Sequential(conv(f, c * s * s, 3), nn.PixelShuffle(s))

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """x (N, C, H, W) in 0..1 -> (N, C, H*s, W*s) in 0..1, not clipped."""
        self.check_scale(scale)
        with full_precision(x):  # the input pixels keep their 16 bits: bf16 would round them to 1/256
            features = self.fea_conv(x.to(self.fea_conv.weight.dtype))  # (N, F, H, W)
        features = to_autocast(features)
        outputs = []
        out = features
        for name in self.block_names:
            out = getattr(self, name)(out)
            outputs.append(out)
        out = self.c(torch.cat(outputs, dim=1))  # (N, B*F, H, W) -> (N, F, H, W)
        out = self.LR_conv(out) + features
        # the last conv makes pixel values and runs at LR resolution: fp32 costs little there (IMDNFamily.precisions)
        with full_precision(out):
            tail = self.upsampler[0]
            return self.upsampler[1](tail(out.to(tail.weight.dtype)))  # (N, C*s*s, H, W) -> (N, C, H*s, W*s)


# ---------------------------------------------------------------------------------------------- the family


def weight_shape(state: StateDict, key: str) -> tuple[int, ...]:
    """The shape of `state[key]`, or CheckpointError naming the key."""
    if key not in state:
        raise CheckpointError(f"missing key '{key}'")
    return tuple(state[key].shape)


def expect_shape(state: StateDict, key: str, shape: tuple[int, ...]) -> None:
    """CheckpointError naming `key` unless its tensor has `shape`."""
    found = weight_shape(state, key)
    if found != shape:
        raise CheckpointError(f"{key} has shape {found}; expected {shape}")


def shuffle_scale(state: StateDict, key: str, n_colors: int) -> int:
    """The factor of a pixel-shuffle tail whose conv `key` makes n_colors * s * s channels."""
    out = weight_shape(state, key)[0]
    s = math.isqrt(out // n_colors)
    if s < 1 or s * s * n_colors != out:
        raise CheckpointError(f"{key} has {out} outputs; expected {n_colors} x scale^2")
    return s


@register_family
class IMDNFamily(Family):
    """IMDN in the official layout (`fea_conv`, `IMDB{i}.c{1..5}`, `IMDB{i}.cca.conv_du.{0,2}`, `c.0`, `LR_conv`,
    `upsampler.0`), with or without DataParallel's `module.` prefix."""

    name = "imdn"
    config_class = IMDNConfig
    key_patterns = (
        r"fea_conv\.weight",
        r"IMDB\d+\.c1\.weight",
        r"IMDB\d+\.cca\.conv_du\.0\.weight",
        r"c\.0\.weight",
        r"LR_conv\.weight",
        r"upsampler\.0\.weight",
    )

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> IMDNConfig:
        f, c = weight_shape(state, "fea_conv.weight")[:2]
        numbers = sorted({int(m.group(1)) for k in state if (m := re.match(r"IMDB(\d+)\.", k))})
        if numbers != list(range(1, len(numbers) + 1)):
            raise CheckpointError(f"IMDN blocks are not numbered IMDB1..IMDB{len(numbers)}: found {numbers}")
        distilled = weight_shape(state, "IMDB1.c4.weight")[0]
        cca_mid = weight_shape(state, "IMDB1.cca.conv_du.0.weight")[0]
        expect_shape(state, "IMDB1.c2.weight", (f, f - distilled, 3, 3))
        expect_shape(state, "IMDB1.c5.weight", (f, 4 * distilled, 1, 1))
        expect_shape(state, "c.0.weight", (f, f * len(numbers), 1, 1))
        scale = shuffle_scale(state, "upsampler.0.weight", c)
        return IMDNConfig(
            scale=scale, n_feats=f, n_blocks=len(numbers), distilled=distilled, cca_mid=cca_mid, n_colors=c
        )

    def build(self, config: IMDNConfig) -> IMDN:
        return IMDN(config)

    def precisions(self, config: IMDNConfig) -> tuple[str, ...]:
        # Set5 Y-PSNR measured fp32 -> bf16 (CPU autocast; the input conv, the attention's statistics and the
        # last conv in fp32): x2 37.9960 -> 37.9897, x3 34.3597 -> 34.3530, x4 32.2096 -> 32.2078, at most
        # 0.007 dB. With every layer in bf16 the x2 model lost 0.029 dB (x3 0.010, x4 0.005).
        return ("fp32", "bf16", "fp16")

    def receptive_radius(self, config: IMDNConfig, scale: int) -> None:
        """None: each block's attention weighs its channels by their mean and standard deviation over the whole
        picture, so every output pixel depends on every input pixel (tiles are approximate)."""
        return None

    def activation_bytes_per_pixel(self, config: IMDNConfig, scale: int) -> int:
        # the B block outputs kept for c.0, a block's working maps, the long skip, and the tail's output: float32
        f = config.n_feats
        return 4 * (config.n_blocks * f + 4 * f + f + 2 * config.n_colors * scale**2)

    def describe(self, config: IMDNConfig) -> str:
        c = config
        return f"IMDN x{c.scale}, {c.n_blocks} blocks x {c.n_feats} features ({c.distilled} distilled per step)"

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        return net(x)
