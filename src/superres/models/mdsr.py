"""MDSR, the multi-scale EDSR (Lim et al., CVPR-W 2017, sec. 3.2): one shared body, small per-scale parts.

State-dict keys equal the official EDSR-PyTorch ones, so its MDSR checkpoints load unchanged. Read top
to bottom: the config, the model.

    x (N, C, H, W), 0..rgb_range, and a scale s (one of config.scales, index i)
      -> sub_mean -> head.0 (conv C->F)
      -> pre_process.i (two 5x5 ResBlocks; absent when config.pre_process is False)
      -> body.0 .. body.{B-1} (3x3 ResBlocks) -> body.{B} (conv F->F)  + global skip
      -> upsample.i (conv + PixelShuffle, as EDSR's tail.0 for scale s)
      -> tail.0 (conv F->C, shared) -> add_mean
    y (N, C, H*s, W*s), 0..rgb_range (not clipped)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import (
    FULL_PRECISION_TAIL_SCALES,
    SUPPORTED_SCALES,
    MeanShift,
    ResBlock,
    SRNetFamily,
    Upsampler,
    body_settings,
    check_body_config,
    conv3x3,
    count_blocks,
    full_precision,
    mean_of,
    to_autocast,
    upsampler_scale,
    weight_dtype,
)
from superres.models.family import FamilyConfig, StateDict, register_family


@dataclass(frozen=True)
class MDSRConfig(FamilyConfig):
    scales: tuple[int, ...] = (2, 3, 4)  # ascending; the official models have (2, 3, 4)
    n_feats: int = 64
    n_resblocks: int = 16
    res_scale: float = 1.0
    # Two 5x5 residual blocks per scale before the body (the paper's scale-specific pre-processing).
    # They hold 38% of MDSR-baseline's parameters and add 38% to the x2 multiply-adds at 12 blocks x 48 features.
    pre_process: bool = True
    n_colors: int = 3
    rgb_range: float = 255.0
    rgb_mean: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        scales = tuple(int(s) for s in self.scales)
        if not scales or any(s not in SUPPORTED_SCALES for s in scales) or len(set(scales)) != len(scales):
            raise ConfigError(
                f"scales must be distinct values from {', '.join(map(str, SUPPORTED_SCALES))}, got {self.scales}"
            )
        object.__setattr__(self, "scales", tuple(sorted(scales)))
        check_body_config(self)


class MDSR(SRNet):
    """Multi-scale EDSR: `forward(x, scale)` with scale one of config.scales."""

    arch = "mdsr"
    config_class = MDSRConfig

    def __init__(self, config: MDSRConfig | None = None, **kwargs) -> None:
        super().__init__()
        config = config if config is not None else MDSRConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f = config.n_colors, config.n_feats
        self.sub_mean = MeanShift(config.rgb_range, mean_of(config), sign=-1)
        self.head = nn.Sequential(conv3x3(c, f))
        if config.pre_process:
            self.pre_process = nn.ModuleList(
                [nn.Sequential(ResBlock(f, 1.0, kernel_size=5), ResBlock(f, 1.0, kernel_size=5)) for _ in config.scales]
            )
        self.body = nn.Sequential(*[ResBlock(f, config.res_scale) for _ in range(config.n_resblocks)], conv3x3(f, f))
        self.upsample = nn.ModuleList([Upsampler(s, f) for s in config.scales])
        self.tail = nn.Sequential(conv3x3(f, c))
        self.add_mean = MeanShift(config.rgb_range, mean_of(config), sign=+1)

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    def part_key(self, key: str) -> str:
        for prefix, part in (("upsample.", "up"), ("pre_process.", "pre")):
            if key.startswith(prefix):
                index, rest = key[len(prefix) :].split(".", 1)
                return f"{part}.x{self.scales[int(index)]}.{rest}"
        if key.startswith("tail.0."):
            return "tail." + key[len("tail.0.") :]
        return key

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        i = self.scales.index(self.check_scale(scale))
        with full_precision(x):
            x = self.head(self.sub_mean(x.to(weight_dtype(self.head, 0))))  # (N, F, H, W)
        x = to_autocast(x)
        if self.config.pre_process:
            x = self.pre_process[i](x)
        x = self.body(x) + x  # global skip
        x = self.upsample[i](x)  # (N, F, H*s, W*s)
        exact = self.scales[i] in FULL_PRECISION_TAIL_SCALES
        with full_precision(x, exact):
            x = x.to(weight_dtype(self.tail, 0)) if exact else x
            return self.add_mean(self.tail(x))  # (N, C, H*s, W*s)


@register_family
class MDSRFamily(SRNetFamily):
    """MDSR in the official EDSR-PyTorch layout: EDSR's head and body, `upsample.{i}.*` per scale, one shared
    `tail.0`, and `pre_process.{i}.*` (two 5x5 blocks per scale) where the model has them."""

    name = "mdsr"
    config_class = MDSRConfig
    key_patterns = (r"head\.0\.weight", r"body\.\d+\.weight", r"upsample\.\d+\.0\.weight", r"tail\.0\.weight")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "mdsr": dict(n_feats=64, n_resblocks=80, pre_process=True),  # the paper's MDSR, 7.95M params
        "mdsr-baseline": dict(n_feats=64, n_resblocks=16, pre_process=True),  # the paper's, 3.23M params
        "mdsr-medium": dict(n_feats=48, n_resblocks=12, pre_process=False),  # the bundled default
        "mdsr-tiny": dict(n_feats=16, n_resblocks=4, pre_process=False),  # for tests
    }

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> MDSRConfig:
        settings = body_settings(state, meta)
        n_scales = count_blocks(state, r"upsample\.(\d+)\.0\.weight$", "upsamplers")
        scales = tuple(upsampler_scale(state, f"upsample.{i}.", settings["n_feats"]) for i in range(n_scales))
        if list(scales) != sorted(set(scales)):
            raise CheckpointError(
                f"upsamplers are for x{', x'.join(map(str, scales))}; expected distinct ascending scales"
            )
        return MDSRConfig(scales=scales, pre_process="pre_process.0.0.body.0.weight" in state, **settings)

    def build(self, config: MDSRConfig) -> MDSR:
        return MDSR(config)

    def scales(self, config: MDSRConfig) -> tuple[int, ...]:
        return tuple(config.scales)

    def receptive_radius(self, config: MDSRConfig, scale: int) -> int:
        lr_convs = 1 + (8 if config.pre_process else 0) + 2 * config.n_resblocks + 1 + 1  # head, 5x5, body, upsampler
        return lr_convs + 1 + (int(math.log2(scale)) - 1 if scale != 3 else 0)  # later upsampler convs + tail

    def activation_bytes_per_pixel(self, config: MDSRConfig, scale: int) -> int:
        f = config.n_feats
        return 4 * (4 * f + (9 if scale == 3 else 4) * f + 2 * config.n_colors * scale**2)

    def describe(self, config: MDSRConfig) -> str:
        return (
            f"MDSR x{'/x'.join(map(str, config.scales))}, {config.n_resblocks} blocks x {config.n_feats} features, "
            f"res_scale {config.res_scale}, {'with' if config.pre_process else 'no'} 5x5 pre-processing"
        )

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> MDSRConfig:
        return MDSRConfig(scales=scales or (2, 3, 4), n_colors=n_colors, **settings)
