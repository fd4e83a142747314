"""SMFANet (Zheng, Sun, Dong and Pan, "SMFANet: A Lightweight Self-Modulation Feature Aggregation Network for
Efficient Image Super-Resolution", ECCV 2024), laid out so that state-dict keys equal the official ones.

Read top to bottom: pooling and resizing that also export to ONNX, the local detail estimation, the
self-modulation feature aggregation (SMFA), the partial-convolution feed-forward network (PCFN), the block, the
network, its config, the family.

    x (N, C, H, W), 0..1, no mean shift; H and W below 8 are padded (replicating the border) and cropped back
      -> to_feat (3x3 C->D)
      -> feats.0 .. feats.{B-1}, each:  x = smfa(normalize(x)) + x;  x = pcfn(normalize(x)) + x
         (normalize: unit L2 norm over the channels at each pixel)
      -> + to_feat's output (long skip)
      -> to_img.0 (3x3 D -> C*s*s) + PixelShuffle(s)
    y (N, C, H*s, W*s), 0..1 (not clipped)

SMFA: linear_0 (1x1, D -> 2D) splits into y (local branch) and x (non-local branch).
    non-local: x_s = dw_conv(adaptive max-pool of x to (H//8, W//8)); x_v = unbiased variance of x over the
               whole picture, per channel; x_l = x * nearest-resize(GELU(linear_1(x_s * alpha + x_v * belt)), H, W)
    local:     y_d = lde(y): depthwise 3x3 (D -> 2D) -> 1x1 -> GELU -> 1x1 (2D -> D)
    out = linear_2(x_l + y_d)
PCFN: conv_0 (1x1, D -> 2D) -> GELU; the first quarter of those channels -> conv_1 (3x3) -> GELU; conv_2 (1x1).

The variance and the pooled map make every output pixel depend on the whole picture: no receptive radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import full_precision, to_autocast
from superres.models.family import Family, FamilyConfig, StateDict, register_family

# ------------------------------------------------------------------------------ pooling and resizing for ONNX
# The TorchScript ONNX exporter cannot export an adaptive pool whose output size follows the input's (it needs a
# constant size). While exporting, the network pools and resizes with these gathers instead; they compute the
# same values as F.adaptive_max_pool2d and F.interpolate(mode="nearest"), bit for bit (tests compare them).


def _adaptive_max_1d(x: torch.Tensor, dim: int, n: Any, cells: Any, longest: int) -> torch.Tensor:
    """Adaptive max-pool of `x` along `dim` (2 or 3; `n` long) to `cells`: cell i takes the max over pixels
    floor(i*n/cells) .. ceil((i+1)*n/cells) - 1, as PyTorch's adaptive pooling does; no cell is over `longest`."""
    i = torch.arange(cells, device=x.device)
    start = torch.div(i * n, cells, rounding_mode="floor")  # (cells,)
    end = torch.div((i + 1) * n + cells - 1, cells, rounding_mode="floor")
    index = start[:, None] + torch.arange(longest, device=x.device)  # (cells, longest)
    index = torch.minimum(index, end[:, None] - 1)  # past a cell's end, its last pixel again: the max is unchanged
    picked = x.index_select(dim, index.flatten()).unflatten(dim, (-1, longest))  # `dim` split in (cells, longest)
    return picked.amax(dim=dim + 1)


def adaptive_max_pool_exportable(x: torch.Tensor, down_scale: int) -> torch.Tensor:
    """F.adaptive_max_pool2d(x, (H // down_scale, W // down_scale)) for H, W >= down_scale, as gathers and a max
    (the bins are rectangles: the max is taken along the rows, then the columns). (N, C, H, W) -> (N, C, H//d, W//d).

    No cell is over 2d pixels: one cell spans all n < 2d; with c >= 2 cells, n / c <= d + (d - 1) / 2 and a cell
    spans fewer than n / c + 2 pixels.

    Sizes are read once, off the input: while exporting they are 0-d tensors that the graph computes, and the
    exporter would freeze a size read off an intermediate result."""
    h, w = x.shape[-2:]
    longest = 2 * down_scale
    rows = _adaptive_max_1d(x, 2, h, h // down_scale, longest)
    return _adaptive_max_1d(rows, 3, w, w // down_scale, longest)


def _nearest_1d(x: torch.Tensor, dim: int, n: Any, size: Any) -> torch.Tensor:
    """Nearest resize along `dim` (`n` long) to `size`, as PyTorch computes it: source = floor(dst * (n / size)),
    the ratio and the product in float32, at most n - 1."""
    ratio = torch.as_tensor(n, dtype=torch.float32) / torch.as_tensor(size, dtype=torch.float32)
    source = torch.floor(torch.arange(size, device=x.device).float() * ratio).long()  # (size,)
    return x.index_select(dim, torch.minimum(source, torch.as_tensor(n) - 1))


def nearest_exportable(x: torch.Tensor, cells: tuple[Any, Any], size: tuple[Any, Any]) -> torch.Tensor:
    """F.interpolate(x, size=size, mode="nearest") for x of spatial size `cells`, as two gathers.
    (N, C, cells_h, cells_w) -> (N, C, size_h, size_w)."""
    return _nearest_1d(_nearest_1d(x, 2, cells[0], size[0]), 3, cells[1], size[1])


def pad_exportable(x: torch.Tensor, least: int) -> torch.Tensor:
    """x with its last row and column repeated up to `least` pixels (F.pad's 'replicate' at the bottom and right),
    as gathers whose sizes the graph computes; a size of `least` or more is left as it is (an identity gather).
    (N, C, H, W) -> (N, C, max(H, least), max(W, least))."""
    for dim in (2, 3):
        n = torch.as_tensor(x.shape[dim])
        end: Any = torch.clamp(n, min=least)  # a 0-d tensor: while exporting, a size the graph computes
        rows = torch.arange(end, device=x.device)
        x = x.index_select(dim, torch.minimum(rows, n - 1))
    return x


# ---------------------------------------------------------------------------------------------- the blocks


def conv(in_channels: int, out_channels: int, kernel_size: int, groups: int = 1) -> nn.Conv2d:
    """A 'same' convolution with bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=True)


def unit_channels(x: torch.Tensor) -> torch.Tensor:
    """F.normalize over the channels (each pixel's channel vector to unit L2 norm), computed in fp32: a half
    precision sum of 36 squares loses digits (bf16) or overflows (fp16) on large features. The result, at most 1
    in size, is then given back in x's dtype."""
    return F.normalize(x.float(), dim=1).to(x.dtype)


class LocalDetailEstimation(nn.Module):
    """The LDE branch: depthwise 3x3 (D -> hidden, groups D) -> 1x1 -> GELU -> 1x1 (hidden -> D)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv_0 = nn.Sequential(conv(dim, hidden, 3, groups=dim), conv(hidden, hidden, 1))
        self.act = nn.GELU()
        self.conv_1 = conv(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1(self.act(self.conv_0(x)))


class SMFA(nn.Module):
    """Self-modulation feature aggregation: a non-local branch (pooled, variance-weighted modulation of its own
    features) beside the local detail estimation, fused by a 1x1 conv."""

    def __init__(self, dim: int, lde_hidden: int, down_scale: int) -> None:
        super().__init__()
        self.linear_0 = conv(dim, 2 * dim, 1)
        self.linear_1 = conv(dim, dim, 1)
        self.linear_2 = conv(dim, dim, 1)
        self.lde = LocalDetailEstimation(dim, lde_hidden)
        self.dw_conv = conv(dim, dim, 3, groups=dim)
        self.gelu = nn.GELU()
        self.down_scale = down_scale
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.belt = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h, w = f.shape[-2:]
        y, x = self.linear_0(f).chunk(2, dim=1)  # (N, D, H, W) each
        cells_h, cells_w = h // self.down_scale, w // self.down_scale
        exporting = torch.onnx.is_in_onnx_export()
        if exporting:
            pooled = adaptive_max_pool_exportable(x, self.down_scale)
        else:
            pooled = F.adaptive_max_pool2d(x, (cells_h, cells_w))  # (N, D, H//8, W//8)
        x_s = self.dw_conv(pooled)
        x_v = torch.var(x.float(), dim=(-2, -1), keepdim=True)  # (N, D, 1, 1), unbiased; fp32 as in unit_channels
        mixed = (x_s * self.alpha + x_v * self.belt).to(x.dtype)  # fp32 sums, then the dtype linear_1 takes
        gate = self.gelu(self.linear_1(mixed))  # (N, D, H//8, W//8)
        if exporting:
            gate = nearest_exportable(gate, (cells_h, cells_w), (h, w))
        else:
            gate = F.interpolate(gate, size=(h, w), mode="nearest")  # (N, D, H, W)
        x_l = x * gate.to(x.dtype)
        return self.linear_2(x_l + self.lde(y))


class PCFN(nn.Module):
    """Partial-convolution feed-forward network: 1x1 (D -> hidden) -> GELU; a 3x3 conv and GELU on the first
    `partial` channels only; 1x1 (hidden -> D)."""

    def __init__(self, dim: int, hidden: int, partial: int) -> None:
        super().__init__()
        self.conv_0 = conv(dim, hidden, 1)
        self.conv_1 = conv(partial, partial, 3)
        self.act = nn.GELU()
        self.conv_2 = conv(hidden, dim, 1)
        self.split = [partial, hidden - partial]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        part, rest = torch.split(self.act(self.conv_0(x)), self.split, dim=1)  # (N, P, H, W), (N, hidden-P, H, W)
        return self.conv_2(torch.cat([self.act(self.conv_1(part)), rest], dim=1))


class FMB(nn.Module):
    """The feature modulation block: SMFA then PCFN, each on channel-normalised features, each with a skip."""

    def __init__(self, config: SMFANetConfig) -> None:
        super().__init__()
        self.smfa = SMFA(config.dim, config.lde_hidden, config.down_scale)
        self.pcfn = PCFN(config.dim, config.ffn_hidden, config.partial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.smfa(unit_channels(x)) + x
        return self.pcfn(unit_channels(x)) + x


@dataclass(frozen=True)
class SMFANetConfig(FamilyConfig):
    scale: int = 4
    dim: int = 36
    n_blocks: int = 8
    ffn_hidden: int = 72  # PCFN's width (twice dim in the paper)
    partial: int = 18  # PCFN channels its 3x3 conv sees (a quarter of ffn_hidden)
    lde_hidden: int = 72  # the local detail estimation's width (twice dim)
    # The pooling makes (H // down_scale, W // down_scale) cells. Not in the weights: 8 in the paper.
    down_scale: int = 8
    n_colors: int = 3

    def __post_init__(self) -> None:
        if self.scale < 1 or self.dim < 1 or self.n_blocks < 1 or self.down_scale < 1:
            raise ConfigError(f"scale, dim, n_blocks and down_scale must be >= 1, got {self}")
        if not 0 < self.partial <= self.ffn_hidden or self.lde_hidden % self.dim:
            raise ConfigError(
                f"SMFANet needs 0 < partial <= ffn_hidden and lde_hidden a multiple of dim, got {self.partial}, "
                f"{self.ffn_hidden}, {self.lde_hidden}, {self.dim}"
            )
        if self.n_colors not in (1, 3):
            raise ConfigError(f"n_colors must be 1 or 3, got {self.n_colors}")


class SMFANet(SRNet):
    """SMFANet: (N, C, H, W) in 0..1 -> (N, C, H*s, W*s), not clipped. An input under 8 pixels high or wide is
    padded to 8 by repeating its last row or column, and the output cropped back (the official network refuses
    it: its pooling would make no cells)."""

    arch = "smfanet"
    config_class = SMFANetConfig

    def __init__(self, config: SMFANetConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else SMFANetConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, d, s = config.n_colors, config.dim, config.scale
        self.to_feat = conv(c, d, 3)
        self.feats = nn.Sequential(*[FMB(config) for _ in range(config.n_blocks)])
        self.to_img = nn.Sequential(conv(d, c * s * s, 3), nn.PixelShuffle(s))

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """x (N, C, H, W) in 0..1 -> (N, C, H*s, W*s) in 0..1, not clipped."""
        s = self.check_scale(scale)
        h, w = x.shape[-2:]
        least = self.config.down_scale
        if torch.onnx.is_in_onnx_export():  # sizes are graph values: pad by gathering, whatever the size
            x = pad_exportable(x, least)
        elif h < least or w < least:
            x = F.pad(x, (0, max(least - w, 0), 0, max(least - h, 0)), mode="replicate")  # (N, C, >=8, >=8)
        with full_precision(x):  # the input pixels keep their 16 bits: bf16 would round them to 1/256
            features = self.to_feat(x.to(self.to_feat.weight.dtype))  # (N, D, H, W)
        out = self.feats(to_autocast(features)) + features
        with full_precision(out):  # the last conv makes pixel values at LR resolution: fp32 costs little
            tail = self.to_img[0]
            out = self.to_img[1](tail(out.to(tail.weight.dtype)))  # (N, C*s*s, H, W) -> (N, C, H*s, W*s)
        return out[..., : h * s, : w * s]


# ---------------------------------------------------------------------------------------------- the family


def weight_shape(state: StateDict, key: str) -> tuple[int, ...]:
    """The shape of `state[key]`, or CheckpointError naming the key."""
    if key not in state:
        raise CheckpointError(f"missing key '{key}'")
    return tuple(state[key].shape)


@register_family
class SMFANetFamily(Family):
    """SMFANet in the official layout (`to_feat`, `feats.{i}.smfa.*` with `alpha`/`belt`, `feats.{i}.pcfn.*`,
    `to_img.0`), as BasicSR saves it (wrapped in `params` or `params_ema`) or unwrapped."""

    name = "smfanet"
    config_class = SMFANetConfig
    key_patterns = (
        r"to_feat\.weight",
        r"feats\.\d+\.smfa\.linear_0\.weight",
        r"feats\.\d+\.smfa\.alpha",
        r"feats\.\d+\.pcfn\.conv_1\.weight",
        r"to_img\.0\.weight",
    )

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> SMFANetConfig:
        dim, c = weight_shape(state, "to_feat.weight")[:2]
        blocks = {int(k.split(".")[1]) for k in state if k.startswith("feats.")}
        if blocks != set(range(len(blocks))):
            raise CheckpointError(f"SMFANet blocks are not numbered feats.0..feats.{len(blocks) - 1}: {sorted(blocks)}")
        if weight_shape(state, "feats.0.smfa.linear_0.weight") != (2 * dim, dim, 1, 1):
            raise CheckpointError(
                f"feats.0.smfa.linear_0.weight has shape {state['feats.0.smfa.linear_0.weight'].shape}"
            )
        ffn_hidden = weight_shape(state, "feats.0.pcfn.conv_0.weight")[0]
        partial = weight_shape(state, "feats.0.pcfn.conv_1.weight")[0]
        lde_hidden = weight_shape(state, "feats.0.smfa.lde.conv_0.0.weight")[0]
        out = weight_shape(state, "to_img.0.weight")[0]
        s = math.isqrt(out // c)
        if s < 1 or s * s * c != out:
            raise CheckpointError(f"to_img.0.weight has {out} outputs; expected {c} x scale^2")
        saved = dict(meta.get("config", {}))
        return SMFANetConfig(
            scale=s,
            dim=dim,
            n_blocks=len(blocks),
            ffn_hidden=ffn_hidden,
            partial=partial,
            lde_hidden=lde_hidden,
            down_scale=int(saved.get("down_scale", 8)),
            n_colors=c,
        )

    def build(self, config: SMFANetConfig) -> SMFANet:
        return SMFANet(config)

    def precisions(self, config: SMFANetConfig) -> tuple[str, ...]:
        # Set5 Y-PSNR measured fp32 -> bf16 (CPU autocast; to_feat, the normalisations, the variance and
        # to_img.0 in fp32): x2 38.0776 -> 38.0697, x4 32.2520 -> 32.2448, under 0.008 dB. With the
        # normalisations and both ends in bf16 too, x2 lost 0.032 dB (x4 0.015).
        return ("fp32", "bf16", "fp16")

    def receptive_radius(self, config: SMFANetConfig, scale: int) -> None:
        """None: each block's variance is over the whole picture and its pooled cells grow with it, so every
        output pixel depends on every input pixel (tiles are approximate)."""
        return None

    def activation_bytes_per_pixel(self, config: SMFANetConfig, scale: int) -> int:
        # the stream and its normalised copy, linear_0's 2D, the LDE's two hidden maps, PCFN's hidden map, the
        # fp32 statistics' copy, and the tail's output: float32
        d = config.dim
        return 4 * (3 * d + 2 * d + 2 * config.lde_hidden + config.ffn_hidden + 2 * config.n_colors * scale**2)

    def describe(self, config: SMFANetConfig) -> str:
        c = config
        return f"SMFANet x{c.scale}, {c.n_blocks} blocks x {c.dim} features"

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        return net(x)
