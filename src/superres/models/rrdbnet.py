"""RRDBNet: ESRGAN's generator (Wang et al., ECCV-W 2018) as Real-ESRGAN runs it (Wang et al., ICCV-W 2021).

State-dict keys equal Real-ESRGAN's (BasicSR's `RRDBNet`), so its `.pth` files load unchanged; the two layouts of
the original ESRGAN repository are renamed to them (`RRDBNetFamily.rename`). Read top to bottom: the blocks, the
config, the model, the family.

    x (N, C, H, W), 0..1
      -> [x2 and x1 models: reflect-padded to a multiple of u, pixel_unshuffle by u (u = 2: 4C channels;
          u = 4: 16C channels), so that the x4 tail below gives x2 or x1]
      -> conv_first (C*u*u -> F)
      -> body.0 .. body.{B-1}: RRDBs, each three residual dense blocks rdb1..rdb3 (five 3x3 convs with growth G,
         densely concatenated, LeakyReLU 0.2 after conv1..conv4; branch x0.2), the RRDB's branch x0.2
      -> conv_body, + conv_first's output (global skip)
      -> n times: nearest x2 -> conv_up{k} -> LeakyReLU 0.2   (n = 2 in Real-ESRGAN, log2(scale) in ESRGAN)
      -> conv_hr -> LeakyReLU 0.2 -> conv_last (F -> C)
      -> [cropped back when the input was padded]
    y (N, C, H*s, W*s), s = 2**n / u, 0..1 (not clipped)

Receptive radius: not stated (None), so tiles are approximate, as in Real-ESRGAN's own tiling (tile_pad=10).
It can be counted (one pixel per 3x3 conv: 1 + 15 per RRDB + 1 at the network's LR grid, at most one LR pixel for
each upsampling stage's convs, times u), but it is large: 349 LR pixels for the 23-block x4 model, 94 for the
6-block one, ~700 for a 23-block x2. A margin that wide would make every tile's box many times its core; and for
u > 1 a tile whose box does not start on a multiple of u sees another unshuffle phase, which no margin makes exact.

Precisions: all three. In bf16 (CPU autocast) the Real-ESRGAN x4 files score within 0.04 dB of fp32 on Set5, their
outputs about 0.3 grey levels apart on average; an fp32 conv_last did not narrow that (the body's rounding dominates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import count_blocks
from superres.models.family import Family, FamilyConfig, StateDict, register_family

SCALES = (1, 2, 4, 8)
UNSHUFFLE_FACTORS = (1, 2, 4)  # pixel-unshuffle of the input: 1 (none), 2 (Real-ESRGAN x2), 4 (Real-ESRGAN x1)
MAX_UPSAMPLINGS = 3  # nearest x2 stages: 2 in Real-ESRGAN, up to 3 in ESRGAN-style x8 models


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block's input and every earlier conv's output; branch scaled by 0.2."""

    def __init__(self, n_feats: int, growth: int) -> None:
        super().__init__()
        f, g = n_feats, growth
        self.conv1 = conv3x3(f, g)
        self.conv2 = conv3x3(f + g, g)
        self.conv3 = conv3x3(f + 2 * g, g)
        self.conv4 = conv3x3(f + 3 * g, g)
        self.conv5 = conv3x3(f + 4 * g, f)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks in a row, their branch scaled by 0.2."""

    def __init__(self, n_feats: int, growth: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(n_feats, growth)
        self.rdb2 = ResidualDenseBlock(n_feats, growth)
        self.rdb3 = ResidualDenseBlock(n_feats, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@dataclass(frozen=True)
class RRDBNetConfig(FamilyConfig):
    scale: int = 4
    n_feats: int = 64
    n_blocks: int = 23
    growth: int = 32  # channels each dense conv adds ("num_grow_ch", "gc")
    n_colors: int = 3
    # nearest x2 + conv stages in the tail. Real-ESRGAN always has 2 and makes x2 and x1 by pixel-unshuffling
    # the input; ESRGAN-style files (and BSRGAN x2) have log2(scale) and no unshuffle.
    n_upsample: int = 2

    def __post_init__(self) -> None:
        for name in ("n_feats", "n_blocks", "growth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_colors not in (1, 3):
            raise ConfigError(f"n_colors must be 1 (grayscale) or 3 (RGB), got {self.n_colors}")
        if self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {', '.join(map(str, SCALES))}, got {self.scale}")
        if not 0 <= self.n_upsample <= MAX_UPSAMPLINGS:
            raise ConfigError(f"n_upsample must be 0..{MAX_UPSAMPLINGS}, got {self.n_upsample}")
        tail = 2**self.n_upsample
        if tail % self.scale or tail // self.scale not in UNSHUFFLE_FACTORS:
            raise ConfigError(
                f"a tail of {self.n_upsample} x2 upsamplings (x{tail}) cannot make x{self.scale}: the input would "
                f"need a pixel-unshuffle by {tail / self.scale:g} (1, 2 or 4 are possible)"
            )

    @property
    def unshuffle(self) -> int:
        """The factor the input is pixel-unshuffled by before conv_first: 1, 2 or 4."""
        return 2**self.n_upsample // self.scale


def pad_to_multiple(x: torch.Tensor, factor: int) -> torch.Tensor:
    """x padded at the bottom and right to a multiple of `factor`, by reflection as Real-ESRGAN's inference does
    (by replication where the picture is too small to reflect). No branch on the amounts, so that an ONNX export
    pads whatever size it is given."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % factor, -w % factor
    small = not torch.onnx.is_in_onnx_export() and not (pad_h < h and pad_w < w)
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate" if small else "reflect")


class RRDBNet(SRNet):
    """ESRGAN / Real-ESRGAN's generator: (N, C, H, W) in 0..1 -> (N, C, H*s, W*s) in 0..1, not clipped."""

    arch = "rrdbnet"
    config_class = RRDBNetConfig

    def __init__(self, config: RRDBNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        config = config if config is not None else RRDBNetConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f, u = config.n_colors, config.n_feats, config.unshuffle
        self.conv_first = conv3x3(c * u * u, f)
        self.body = nn.Sequential(*[RRDB(f, config.growth) for _ in range(config.n_blocks)])
        self.conv_body = conv3x3(f, f)
        self.up_names = [f"conv_up{k}" for k in range(1, config.n_upsample + 1)]
        for name in self.up_names:
            self.add_module(name, conv3x3(f, f))
        self.conv_hr = conv3x3(f, f)
        self.conv_last = conv3x3(f, c)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        s = self.check_scale(scale)
        u = self.config.unshuffle
        h, w = x.shape[-2:]
        if u > 1:
            x = F.pixel_unshuffle(pad_to_multiple(x, u), u)  # (N, C*u*u, ceil(H/u), ceil(W/u))
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))  # global skip
        for name in self.up_names:
            feat = self.lrelu(getattr(self, name)(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : h * s, : w * s] if u > 1 else out  # less the padding's share


# ---------------------------------------------------------------------------------------------- other layouts

# The original ESRGAN repository, after its 2019 rewrite (RRDBNet_arch.py; also BSRGAN's files).
_ESRGAN_RENAMES = [
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB([123])\."), r"body.\1.rdb\2."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv(\d+)\."), r"conv_up\1."),
    (re.compile(r"^HRconv\."), "conv_hr."),
]
# The original ESRGAN repository before it (architecture.py's RRDB_Net): one flattened nn.Sequential `model`,
# model.0 = first conv, model.1 = ShortcutBlock(sub = RRDBs then the body's last conv), then per upsampling
# (nn.Upsample, conv, LeakyReLU), then HR_conv0 (conv, LeakyReLU) and HR_conv1 (conv). Each conv of a dense block
# is a conv_block Sequential (conv[, act]), hence its `.0`. At x4: model.3 and model.6 upsample, model.8 = conv_hr,
# model.10 = conv_last.
_OLD_DENSE = re.compile(r"^model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)$")
_OLD_SUB = re.compile(r"^model\.1\.sub\.(\d+)\.(weight|bias)$")
_OLD_TOP = re.compile(r"^model\.(\d+)\.(weight|bias)$")


def _rename_old_esrgan(state: StateDict) -> StateDict:
    """architecture.py's keys in Real-ESRGAN's. The convs after model.1 are, in order, the upsampling convs, conv_hr
    and conv_last. (An ESRGAN x3 file, with one x3 upsampling, has x2's keys: it is read as x2.)"""
    tail = sorted({int(m.group(1)) for k in state if (m := _OLD_TOP.match(k)) and int(m.group(1)) > 1})
    names = {i: f"conv_up{n + 1}" for n, i in enumerate(tail[:-2])}
    if len(tail) >= 2:
        names.update({tail[-2]: "conv_hr", tail[-1]: "conv_last"})
    names[0] = "conv_first"

    def new(key: str) -> str:
        if m := _OLD_DENSE.match(key):
            return f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"
        if m := _OLD_SUB.match(key):
            return f"conv_body.{m.group(2)}"
        if (m := _OLD_TOP.match(key)) and int(m.group(1)) in names:
            return f"{names[int(m.group(1))]}.{m.group(2)}"
        return key  # anything else (a norm layer, say) stays, and strict loading names it

    return {new(k): v for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- the family


def _conv_shape(state: StateDict, key: str) -> tuple[int, int]:
    """(out, in) channels of a 3x3 conv weight, or CheckpointError naming it."""
    if key not in state:
        raise CheckpointError(f"no '{key}' in the file")
    shape = tuple(state[key].shape)
    if len(shape) != 4 or shape[2:] != (3, 3):
        raise CheckpointError(f"{key} has shape {shape}; expected a 3x3 conv weight")
    return int(shape[0]), int(shape[1])


@register_family
class RRDBNetFamily(Family):
    """RRDBNet in Real-ESRGAN's layout (`conv_first`, `body.{i}.rdb{1,2,3}.conv{1..5}`, `conv_body`, `conv_up{k}`,
    `conv_hr`, `conv_last`) and in the original ESRGAN repository's two: `conv_first`, `RRDB_trunk.{i}.RDB{k}`,
    `trunk_conv`, `upconv{k}`, `HRconv`, `conv_last` (2019-, and BSRGAN), and `model.0`, `model.1.sub.{i}.RDB{k}.
    conv{j}.0`, `model.1.sub.{B}`, `model.3`, `model.6`, `model.8`, `model.10` (2018, at x4)."""

    name = "rrdbnet"
    config_class = RRDBNetConfig
    key_patterns = (
        r"conv_first\.weight",
        r"body\.\d+\.rdb1\.conv1\.weight",
        r"conv_body\.weight",
        r"conv_hr\.weight",
        r"conv_last\.weight",
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "rrdbnet": dict(n_feats=64, n_blocks=23, growth=32),  # ESRGAN, RealESRGAN_x4plus: 16.7M params at x4
        "rrdbnet-6b": dict(n_feats=64, n_blocks=6, growth=32),  # RealESRGAN_x4plus_anime_6B: 4.47M at x4
    }

    def rename(self, state: StateDict) -> StateDict:
        if "RRDB_trunk.0.RDB1.conv1.weight" in state:
            out = {}
            for key, value in state.items():
                for pattern, repl in _ESRGAN_RENAMES:
                    if pattern.match(key):
                        key = pattern.sub(repl, key)
                        break
                out[key] = value
            return out
        if "model.0.weight" in state and "model.1.sub.0.RDB1.conv1.0.weight" in state:
            return _rename_old_esrgan(state)
        return state

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> RRDBNetConfig:
        n_feats, n_in = _conv_shape(state, "conv_first.weight")
        n_colors, last_in = _conv_shape(state, "conv_last.weight")
        if n_colors not in (1, 3):
            raise CheckpointError(
                f"conv_last.weight makes {n_colors} channels; only 1 (grayscale) and 3 (RGB) are supported"
            )
        if last_in != n_feats:
            raise CheckpointError(f"conv_last.weight takes {last_in} channels but conv_first makes {n_feats}")
        factors = {n_colors * u * u: u for u in UNSHUFFLE_FACTORS}
        if n_in not in factors:
            raise CheckpointError(
                f"conv_first.weight takes {n_in} channels: not {n_colors} colours pixel-unshuffled by 1, 2 or 4 "
                f"({', '.join(map(str, factors))} channels)"
            )
        n_blocks = count_blocks(state, r"body\.(\d+)\.rdb1\.conv1\.weight$", "RRDBs")
        if n_blocks == 0:
            raise CheckpointError("no RRDB found (keys 'body.{i}.rdb1.conv1.weight')")
        growth, _ = _conv_shape(state, "body.0.rdb1.conv1.weight")
        ups = sorted(int(m.group(1)) for k in state if (m := re.match(r"conv_up(\d+)\.weight$", k)))
        if ups != list(range(1, len(ups) + 1)) or len(ups) > MAX_UPSAMPLINGS:
            found = ", ".join(f"conv_up{k}" for k in ups)
            raise CheckpointError(
                f"upsampling convs {found}: expected conv_up1 .. conv_up{{n}}, n <= {MAX_UPSAMPLINGS}"
            )
        tail, u = 2 ** len(ups), factors[n_in]
        if tail < u:
            raise CheckpointError(f"an input unshuffled by {u} with a x{tail} tail would make x{tail / u:g}")
        return RRDBNetConfig(
            scale=tail // u, n_feats=n_feats, n_blocks=n_blocks, growth=growth, n_colors=n_colors, n_upsample=len(ups)
        )

    def build(self, config: RRDBNetConfig) -> RRDBNet:
        return RRDBNet(config)

    def receptive_radius(self, config: RRDBNetConfig, scale: int) -> int | None:
        return None  # hundreds of LR pixels (module docstring): approximate tiles

    def activation_bytes_per_pixel(self, config: RRDBNetConfig, scale: int) -> int:
        # At the network's LR grid, inside a dense block: the skip, the RRDB and block inputs, x1..x4, their
        # concatenation and conv5's output; each upsampling stage (4x the pixels of the one before) holds the
        # upsampled map and its conv's output, the last one also conv_hr's; plus the output and its copy.
        f, g = config.n_feats, config.growth
        grid = 5 * f + 8 * g + (3 * f if config.n_upsample == 0 else 0)
        for k in range(1, config.n_upsample + 1):
            grid += 4**k * (3 * f if k == config.n_upsample else 2 * f)
        return 4 * (grid // config.unshuffle**2 + 2 * config.n_colors * config.scale**2)

    def export_min_side(self, config: RRDBNetConfig) -> int:
        return config.unshuffle  # an export reflect-pads to a multiple of it, which needs at least that many pixels

    def describe(self, config: RRDBNetConfig) -> str:
        c = config
        text = f"RRDBNet x{c.scale}, {c.n_blocks} blocks x {c.n_feats} features, growth {c.growth}"
        if c.unshuffle > 1:
            text += f", input pixel-unshuffled by {c.unshuffle} into an x{2**c.n_upsample} tail"
        return text

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> RRDBNetConfig:
        """Real-ESRGAN's way: a x4 tail, fed a pixel-unshuffled input for x2 and x1 (x8: a third upsampling)."""
        if scales is not None and len(scales) != 1:
            raise ConfigError(f"an RRDBNet makes one scale, not x{', x'.join(map(str, scales))}")
        scale = scales[0] if scales else 4
        return RRDBNetConfig(scale=scale, n_colors=n_colors, n_upsample=3 if scale == 8 else 2, **settings)
