"""CARN-M, the mobile Cascading Residual Network (Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution
with Cascading Residual Network", ECCV 2018), laid out so that state-dict keys equal the official ones.

Read top to bottom: the mean shift, the efficient residual block, the cascading block, the upsampler, the
network, its config, the family.

    x (N, 3, H, W), 0..1, and a scale s (one of config.scales)
      -> sub_mean.shifter (1x1, stored in the file: subtracts DIV2K's mean)
      -> entry (3x3, 3 -> F)
      -> b1 .. b{B}, cascaded: o_0 = x; c_k = cat(c_{k-1}, b_k(o_{k-1})); o_k = c{k}(c_k)  (1x1 + ReLU)
         where each b_k is itself such a cascade over ONE efficient residual block `b_k.b1` used U times:
         grouped 3x3 -> ReLU -> grouped 3x3 -> ReLU -> 1x1, plus its input, ReLU
      -> upsample.up{s} (grouped 3x3 F -> 4F + ReLU + PixelShuffle(2), once or twice; or 9F and 3)
      -> exit (3x3, F -> 3) -> add_mean.shifter
    y (N, 3, H*s, W*s), 0..1 (not clipped)

The published file holds the x2, x3 and x4 upsamplers (`upsample.up2/up3/up4`) beside one shared body; a
network trained for one scale has a single `upsample.up` instead.
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
from superres.models.edsr import DIV2K_RGB_MEAN, full_precision, to_autocast
from superres.models.family import Family, FamilyConfig, StateDict, register_family

SUPPORTED_SCALES = (2, 3, 4, 8)


class MeanShift(nn.Module):
    """Adds (sign=+1) or subtracts (sign=-1) a per-channel mean, as the official 1x1 conv `shifter`, whose
    weights the file holds (and which, as in the official code, never trains and counts as parameters)."""

    def __init__(self, mean: tuple[float, ...], sign: int) -> None:
        super().__init__()
        n = len(mean)
        self.shifter = nn.Conv2d(n, n, 1)
        self.shifter.weight = nn.Parameter(torch.eye(n).view(n, n, 1, 1), requires_grad=False)
        self.shifter.bias = nn.Parameter(sign * torch.tensor(mean), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class ConvReLU(nn.Module):
    """The official `BasicBlock`: a 1x1 conv and a ReLU (`body.0`, `body.1`), the cascades' fusions."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EResidualBlock(nn.Module):
    """The efficient residual block: grouped 3x3 -> ReLU -> grouped 3x3 -> ReLU -> 1x1, plus the input, ReLU."""

    def __init__(self, n_feats: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


def cascade(x: torch.Tensor, units: list[nn.Module], fusions: list[nn.Module]) -> torch.Tensor:
    """The cascading connection: each unit's output joins everything before it, and a 1x1 fusion of that
    concatenation feeds the next unit. (N, F, H, W) -> (N, F, H, W)."""
    joined = out = x
    for unit, fuse in zip(units, fusions, strict=True):
        joined = torch.cat([joined, unit(out)], dim=1)  # (N, (k+1)F, H, W)
        out = fuse(joined)  # (N, F, H, W)
    return out


class CascadingBlock(nn.Module):
    """One local cascade: the block's single efficient residual block `b1`, used `n_units` times, with 1x1
    fusions `c1` .. `c{n_units}`."""

    def __init__(self, n_feats: int, groups: int, n_units: int) -> None:
        super().__init__()
        self.b1 = EResidualBlock(n_feats, groups)
        self.n_units = n_units
        for k in range(1, n_units + 1):
            self.add_module(f"c{k}", ConvReLU((k + 1) * n_feats, n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fusions = [getattr(self, f"c{k}") for k in range(1, self.n_units + 1)]
        return cascade(x, [self.b1] * self.n_units, fusions)


class UpsampleBranch(nn.Module):
    """Sub-pixel upsampling by `scale`: grouped 3x3 F -> 4F, ReLU, PixelShuffle(2), log2(scale) times; or
    F -> 9F, ReLU, PixelShuffle(3) for x3."""

    def __init__(self, n_feats: int, scale: int, groups: int) -> None:
        super().__init__()
        steps = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        for r in steps:
            layers += [nn.Conv2d(n_feats, r * r * n_feats, 3, padding=1, groups=groups), nn.ReLU(inplace=True)]
            layers.append(nn.PixelShuffle(r))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (N, F, H, W) -> (N, F, H*s, W*s)


@dataclass(frozen=True)
class CARNMConfig(FamilyConfig):
    scales: tuple[int, ...] = (2, 3, 4)  # ascending
    # True: one upsampler per scale, `upsample.up{s}` (the published file); False: a single `upsample.up`, for a
    # network trained at one scale (then `scales` has one entry).
    multi_scale: bool = True
    n_feats: int = 64
    groups: int = 4  # of the grouped 3x3 convs (residual blocks and upsamplers): 64 / 16 in the paper
    n_blocks: int = 3  # cascading blocks b1 .. b{n_blocks}
    n_units: int = 3  # uses of each cascading block's one (shared) residual block

    def __post_init__(self) -> None:
        scales = tuple(sorted({int(s) for s in self.scales}))
        object.__setattr__(self, "scales", scales)
        if not scales or any(s not in SUPPORTED_SCALES for s in scales):
            raise ConfigError(f"scales must be among {', '.join(map(str, SUPPORTED_SCALES))}, got {self.scales}")
        if not self.multi_scale and len(scales) != 1:
            raise ConfigError(f"a single-branch CARN-M has one scale, got {scales}")
        if self.n_feats < 1 or self.groups < 1 or self.n_feats % self.groups:
            raise ConfigError(f"n_feats ({self.n_feats}) must be a positive multiple of groups ({self.groups})")
        if self.n_blocks < 1 or self.n_units < 1:
            raise ConfigError(f"n_blocks and n_units must be >= 1, got {self.n_blocks} and {self.n_units}")

    @property
    def n_colors(self) -> int:
        return 3  # the mean shift is RGB


class CARNM(SRNet):
    """CARN-M: (N, 3, H, W) in 0..1 and a scale -> (N, 3, H*s, W*s), not clipped."""

    arch = "carn_m"
    config_class = CARNMConfig

    def __init__(self, config: CARNMConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else CARNMConfig(**kwargs)
        self.config = config
        self.metadata = {}
        f, g = config.n_feats, config.groups
        self.sub_mean = MeanShift(DIV2K_RGB_MEAN, sign=-1)
        self.add_mean = MeanShift(DIV2K_RGB_MEAN, sign=+1)
        self.entry = nn.Conv2d(3, f, 3, padding=1)
        for k in range(1, config.n_blocks + 1):
            self.add_module(f"b{k}", CascadingBlock(f, g, config.n_units))
            self.add_module(f"c{k}", ConvReLU((k + 1) * f, f))
        branches = {f"up{s}": UpsampleBranch(f, s, g) for s in config.scales}
        if not config.multi_scale:
            branches = {"up": UpsampleBranch(f, config.scales[0], g)}
        self.upsample = nn.ModuleDict(branches)
        self.exit = nn.Conv2d(f, 3, 3, padding=1)

    def part_key(self, key: str) -> str:
        if key.startswith("upsample.up"):
            branch, rest = key[len("upsample.") :].split(".", 1)
            s = self.config.scales[0] if branch == "up" else int(branch[2:])
            return f"up.x{s}.{rest}"
        return key

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """x (N, 3, H, W) in 0..1 -> (N, 3, H*s, W*s) in 0..1, not clipped."""
        s = self.check_scale(scale)
        with full_precision(x):  # the input pixels keep their 16 bits: bf16 would round them to 1/256
            x = self.entry(self.sub_mean(x.to(self.entry.weight.dtype)))  # (N, F, H, W)
        x = to_autocast(x)
        n = self.config.n_blocks
        x = cascade(
            x, [getattr(self, f"b{k}") for k in range(1, n + 1)], [getattr(self, f"c{k}") for k in range(1, n + 1)]
        )
        x = self.upsample["up" if not self.config.multi_scale else f"up{s}"](x)  # (N, F, H*s, W*s)
        with full_precision(x):  # the output's pixel values (CARNMFamily.precisions)
            return self.add_mean(self.exit(x.to(self.exit.weight.dtype)))  # (N, 3, H*s, W*s)


# ---------------------------------------------------------------------------------------------- the family


def weight_shape(state: StateDict, key: str) -> tuple[int, ...]:
    """The shape of `state[key]`, or CheckpointError naming the key."""
    if key not in state:
        raise CheckpointError(f"missing key '{key}'")
    return tuple(state[key].shape)


def expect_inputs(state: StateDict, key: str, channels: int) -> None:
    """CheckpointError naming `key` unless its conv takes `channels` input channels."""
    shape = weight_shape(state, key)
    if len(shape) != 4 or shape[1] != channels:
        raise CheckpointError(f"{key} has shape {shape}; expected {channels} input channels")


def branch_scale(state: StateDict, prefix: str, n_feats: int) -> int:
    """The factor of the upsampler whose convs are `{prefix}body.{i}.weight`, from their number and widths."""
    convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(re.escape(prefix) + r"body\.(\d+)\.weight", k)))
    first = weight_shape(state, f"{prefix}body.0.weight")[0]
    if first == 9 * n_feats and len(convs) == 1:
        return 3
    if first == 4 * n_feats and len(convs) in (1, 2, 3):
        return 2 ** len(convs)
    raise CheckpointError(f"{prefix}body.0.weight has {first} outputs; expected 4 or 9 x n_feats ({n_feats})")


@register_family
class CARNMFamily(Family):
    """CARN-M in the official layout: `entry`, `b{i}.b1.body.{0,2,4}`, `b{i}.c{k}.body.0`, `c{k}.body.0`,
    `upsample.up{2,3,4}.body.*` (or one `upsample.up`), `exit`, and the mean shifts `sub_mean.shifter`,
    `add_mean.shifter`. One network serves every scale it has an upsampler for."""

    name = "carn_m"
    config_class = CARNMConfig
    key_patterns = (
        r"entry\.weight",
        r"b\d+\.b1\.body\.4\.weight",  # the efficient block's 1x1 (CARN's residual block has no body.4)
        r"b\d+\.c\d+\.body\.0\.weight",
        r"c\d+\.body\.0\.weight",
        r"upsample\.up\d*\.body\.0\.weight",
        r"exit\.weight",
    )

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> CARNMConfig:
        f, colors = weight_shape(state, "entry.weight")[:2]
        if colors != 3:
            raise CheckpointError(f"entry.weight has {colors} input channels; CARN-M takes RGB (3)")
        per_group = weight_shape(state, "b1.b1.body.0.weight")[1]
        if f % per_group:
            raise CheckpointError(f"b1.b1.body.0.weight takes {per_group} channels per group, not a divisor of {f}")
        groups = f // per_group
        n_blocks = len({k.split(".")[0] for k in state if re.match(r"b\d+\.b1\.", k)})
        n_units = len({k.split(".")[1] for k in state if re.match(r"b1\.c\d+\.body\.0\.weight$", k)})
        for k in range(1, n_blocks + 1):  # the cascades' fusions take (k+1)F channels; strict loading checks the rest
            expect_inputs(state, f"c{k}.body.0.weight", (k + 1) * f)
        for k in range(1, n_units + 1):
            expect_inputs(state, f"b1.c{k}.body.0.weight", (k + 1) * f)
        shape: dict[str, Any] = dict(n_feats=f, groups=groups, n_blocks=n_blocks, n_units=n_units)
        branches = sorted({m.group(1) for k in state if (m := re.match(r"upsample\.(up\d*)\.", k))})
        if branches == ["up"]:  # a network trained for one scale
            return CARNMConfig(scales=(branch_scale(state, "upsample.up.", f),), multi_scale=False, **shape)
        if "up" in branches:
            raise CheckpointError("upsample.up.body.0.weight beside per-scale upsamplers (upsample.up{s})")
        for branch in branches:
            if branch_scale(state, f"upsample.{branch}.", f) != int(branch[2:]):
                raise CheckpointError(f"upsample.{branch}.body.0.weight does not fit an x{branch[2:]} upsampler")
        return CARNMConfig(scales=tuple(int(b[2:]) for b in branches), **shape)

    def build(self, config: CARNMConfig) -> CARNM:
        return CARNM(config)

    def scales(self, config: CARNMConfig) -> tuple[int, ...]:
        return config.scales

    def n_colors(self, config: CARNMConfig) -> int:
        return 3

    def precisions(self, config: CARNMConfig) -> tuple[str, ...]:
        # Set5 Y-PSNR of carn_m.safetensors measured fp32 -> bf16 (CPU autocast, with the mean shifts, entry and
        # exit in fp32): x2 37.6784 -> 37.6779, x3 34.0577 -> 34.0565, x4 31.8831 -> 31.8817. With every layer
        # in bf16 x2 lost 0.015 dB (37.6630); exit runs at full size but is 2% of the multiply-adds at x2.
        return ("fp32", "bf16", "fp16")

    def openvino_precisions(self, config: CARNMConfig) -> tuple[str, ...]:
        # OpenVINO bf16 (every layer in bf16) cost 0.076 / 0.044 / 0.023 dB on Set5 at x2 / x3 / x4, where the
        # others cost 0.02 or less (benchmarks/auto_psnr.py): fp32 only, so `auto` keeps CARN-M on PyTorch bf16
        return ("fp32",)

    def receptive_radius(self, config: CARNMConfig, scale: int) -> int:
        """Counted per path, in LR pixels: `entry` (3x3) 1; each use of an efficient residual block has two
        grouped 3x3 convs, 2, and every block uses its one residual block n_units times, n_blocks blocks deep;
        the 1x1 fusions add nothing. The upsampler's first 3x3 conv is at LR: 1. Every later 3x3 conv (the
        x4 and x8 branches' next ones at 2x, 4x, and `exit` at full size) reaches one pixel at its own
        resolution: together at most one more LR pixel, since an output pixel in LR pixel i at any of these
        resolutions reaches only LR pixels i-1..i+1 (at x2: output 2i reaches 2i-1, in LR pixel i-1). So 2 for
        the upsampler and exit at every scale; 21 for the published network. Tests check the count both
        ways: tiles cut with it are exact, and the input pixel 21 away still moves the output."""
        return 1 + 2 * config.n_units * config.n_blocks + 2

    def activation_bytes_per_pixel(self, config: CARNMConfig, scale: int) -> int:
        # the top-level and the inner concatenations ((n+1)F each), a few F-wide maps, the upsampler's widest
        # map (4F or 9F per LR pixel, 16F for x4's second step) and the output: float32
        f, n = config.n_feats, config.n_blocks + 1
        widest = {2: 4, 3: 9, 4: 16, 8: 64}[scale] * f
        return 4 * (2 * n * f + 3 * f + widest + 2 * 3 * scale**2)

    def describe(self, config: CARNMConfig) -> str:
        c = config
        return (
            f"CARN-M x{', x'.join(map(str, c.scales))}, {c.n_blocks} cascading blocks x {c.n_units} uses of a "
            f"grouped residual block, {c.n_feats} features, groups {c.groups}"
        )
