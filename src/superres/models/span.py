"""SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution", CVPRW 2024), laid out
so that state-dict keys equal the official ones, in both of its published layouts.

Every 3x3 convolution of SPAN is a re-parameterisable `Conv3XC`. It trains as two branches, a 1x1 skip `sk` and
`conv` = 1x1 (C_in -> g*C_in) -> 3x3 (-> g*C_out, no padding: the input is zero-padded first) -> 1x1 (-> C_out),
and runs as one 3x3 convolution `eval_conv` that is their exact fold. Training files hold `<layer>.sk.*`,
`<layer>.conv.{0,1,2}.*` and (usually) the fused `<layer>.eval_conv.*`; deploy files hold `eval_conv` only (44
keys for the published 6-block models). A network built from a training file folds the branches into
`eval_conv` when it is loaded and whenever it is put in eval mode; in training mode it runs the branches.

Read top to bottom: the re-parameterisable conv, the attention block, the network, its config, the family.

    x (N, C, H, W), 0..1
      -> (x - DIV2K mean) * 255             (files with a `no_norm` buffer skip this)
      -> conv_1 (3x3, C -> F) = feat
      -> block_1 .. block_N (SPAB)           each: c1_r -> SiLU -> c2_r -> SiLU -> c3_r = y,
                                             out = (y + input) * (sigmoid(y) - 0.5)   (parameter-free attention)
      -> conv_2 (3x3, F -> F)
      -> conv_cat (1x1 over [feat, conv_2 out, block_1 out, SiLU(block_N's c1_r out)])
      -> upsampler.0 (3x3, F -> C*s*s) + PixelShuffle(s)
    y (N, C, H*s, W*s), 0..1 (not clipped; no mean added back)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import DIV2K_GRAY_MEAN, DIV2K_RGB_MEAN, full_precision, to_autocast
from superres.models.family import Family, FamilyConfig, StateDict, load_state_strict, register_family

MAX_SCALE = 8


class Conv3XC(nn.Module):
    """A 'same' 3x3 convolution that trains as two branches and runs as their fold (`eval_conv`).

    gain 0: the deploy form, `eval_conv` alone (trainable). gain g > 0: the training form, with `sk` (1x1) and
    `conv` (1x1 -> 3x3 -> 1x1, widths g*C_in and g*C_out); `eval_conv` is then derived (not trained) and is
    refreshed by `fold`, which `train(False)` calls.
    """

    def __init__(self, c_in: int, c_out: int, gain: int) -> None:
        super().__init__()
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.sk: nn.Conv2d | None = None
        self.conv: nn.Sequential | None = None
        if gain > 0:
            self.sk = nn.Conv2d(c_in, c_out, 1)
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in * gain, 1),
                nn.Conv2d(c_in * gain, c_out * gain, 3),  # no padding: the branch pads its input (forward)
                nn.Conv2d(c_out * gain, c_out, 1),
            )
            self.eval_conv.weight.requires_grad_(False)
            bias_of(self.eval_conv).requires_grad_(False)
            self.fold()

    @property
    def has_branches(self) -> bool:
        return self.sk is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sk is not None and self.conv is not None:
            # zero padding before the first 1x1 conv: padded positions carry that conv's bias into the 3x3,
            # exactly as the folded kernel (whose bias counts all nine taps) treats them
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        return self.eval_conv(x)

    def train(self, mode: bool = True) -> Conv3XC:
        super().train(mode)
        if not mode:
            self.fold()
        return self

    @torch.no_grad()
    def fold(self) -> None:
        """Set `eval_conv` to the single 3x3 convolution the branches compute (nothing to do in deploy form).

        With W1 (gI, I) and b1 the first 1x1, W2 (gO, gI, 3, 3) and b2 the 3x3, W3 (O, gO) and b3 the last 1x1:
        kernel = W3 . W2 . W1 (contracting the widths, keeping the 3x3 taps), bias = W3 (sum of W2's taps . b1
        + b2) + b3; then the skip's 1x1 kernel is added at the centre tap and its bias to the bias. Computed in
        float64 (float32 where the device has none) and stored in eval_conv's dtype."""
        if self.sk is None or self.conv is None:
            return
        weight = self.eval_conv.weight
        wide = torch.float32 if weight.device.type == "mps" else torch.float64
        c0, c1, c2 = (layer for layer in self.conv if isinstance(layer, nn.Conv2d))
        w1, w2, w3 = c0.weight[:, :, 0, 0].to(wide), c1.weight.to(wide), c2.weight[:, :, 0, 0].to(wide)
        b1, b2, b3 = (bias_of(c).to(wide) for c in (c0, c1, c2))
        inner = torch.einsum("omhw,mi->oihw", w2, w1)  # (gO, I, 3, 3)
        inner_bias = torch.einsum("omhw,m->o", w2, b1) + b2  # (gO,)
        kernel = torch.einsum("co,oihw->cihw", w3, inner)  # (O, I, 3, 3)
        bias = w3 @ inner_bias + b3 + bias_of(self.sk).to(wide)
        kernel[:, :, 1, 1] += self.sk.weight[:, :, 0, 0].to(wide)
        weight.copy_(kernel.to(weight.dtype))
        bias_of(self.eval_conv).copy_(bias.to(weight.dtype))


def bias_of(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution built with one (every SPAN conv is)."""
    assert conv.bias is not None
    return conv.bias


class SPAB(nn.Module):
    """Swift parameter-free attention block: three Conv3XC with SiLU between, a residual, and the attention
    sigmoid(y) - 0.5 of the last conv's output y, which has no parameters of its own."""

    def __init__(self, n_feats: int, mid_feats: int, gain: int) -> None:
        super().__init__()
        self.c1_r = Conv3XC(n_feats, mid_feats, gain)
        self.c2_r = Conv3XC(mid_feats, mid_feats, gain)
        self.c3_r = Conv3XC(mid_feats, n_feats, gain)

    def forward(
        self, x: torch.Tensor, modulation: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output (N, F, H, W) and its first conv's output after the SiLU (N, M, H, W). (The official
        code returns that conv's output tensor, but its in-place SiLU has overwritten it with the activation by
        then: the published weights were trained, and score, with the activated one.) `modulation`: (scale,
        shift), each (N, M, 1, 1), applied to the first conv's output as `out * (1 + scale) + shift` (a
        conditioned MSPAN)."""
        first = self.c1_r(x)
        if modulation is not None:
            first = first * (1 + modulation[0]) + modulation[1]
        first = F.silu(first)
        y = self.c3_r(F.silu(self.c2_r(first)))
        return (y + x) * (torch.sigmoid(y) - 0.5), first


def check_body(config: Any) -> None:
    """The checks a SPAN-bodied config (SPANConfig, MSPANConfig) shares: widths, depth, gain, colours; fills in
    its mean (DIV2K's, or its BT.601 luma for one channel, where none is given)."""
    if min(config.n_feats, config.mid_feats, config.n_blocks) < 1 or config.gain < 0:
        raise ConfigError(
            f"n_feats, mid_feats and n_blocks must be >= 1 and gain >= 0, got {config.n_feats}, {config.mid_feats}, "
            f"{config.n_blocks} and {config.gain}"
        )
    if config.n_colors not in (1, 3):
        raise ConfigError(f"n_colors must be 1 or 3, got {config.n_colors}")
    given = config.rgb_mean
    mean = given if given is not None else DIV2K_RGB_MEAN if config.n_colors == 3 else DIV2K_GRAY_MEAN
    object.__setattr__(config, "rgb_mean", tuple(float(m) for m in mean))
    if len(config.rgb_mean) != config.n_colors:
        raise ConfigError(f"rgb_mean needs {config.n_colors} values, got {len(config.rgb_mean)}")


def deploy_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A network's weights with every Conv3XC folded and its branches left out (the deploy layout)."""
    fold_all(net)
    return {k: v for k, v in net.state_dict().items() if not re.search(r"\.(sk|conv\.\d+)\.", k)}


def fold_all(net: nn.Module) -> None:
    """Fold every Conv3XC of a network (nothing to do for those in deploy form)."""
    for module in net.modules():
        if isinstance(module, Conv3XC):
            module.fold()


@dataclass(frozen=True)
class SPANConfig(FamilyConfig):
    scale: int = 4
    n_feats: int = 48
    # width inside each block (c1_r's outputs); the published models use n_feats
    mid_feats: int = 48
    n_blocks: int = 6
    n_colors: int = 3
    # 0: deploy layout (eval_conv only). g > 0: training layout, each Conv3XC with branches g times as wide
    # inside (the official models train with 2), folded into eval_conv for inference
    gain: int = 0
    # whether the network subtracts the mean and scales by img_range; files with a `no_norm` buffer (chaiNNer's
    # and traiNNer's SPAN trained with norm=False) take 0..1 as it is
    norm: bool = True
    # the official network computes (x - rgb_mean) * img_range on its 0..1 input; neither is in the file.
    # None: DIV2K's mean (its BT.601 luma for one channel)
    img_range: float = 255.0
    rgb_mean: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if not 1 <= self.scale <= MAX_SCALE:
            raise ConfigError(f"scale must be 1..{MAX_SCALE}, got {self.scale}")
        check_body(self)

    @property
    def mean(self) -> tuple[float, ...]:
        """The per-channel mean (filled in when the config was made)."""
        assert self.rgb_mean is not None
        return tuple(self.rgb_mean)


class SPAN(SRNet):
    """Swift Parameter-free Attention Network. Input and output (N, n_colors, H, W) in 0..1; the output is
    H*scale x W*scale and is not clipped."""

    arch = "span"
    config_class = SPANConfig
    mean: torch.Tensor
    no_norm: torch.Tensor | None

    def __init__(self, config: SPANConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else SPANConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f, m, g, s = config.n_colors, config.n_feats, config.mid_feats, config.gain, config.scale
        # not in the file (persistent=False): the official network keeps it as a plain attribute
        mean = torch.tensor(config.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        if config.norm:
            self.no_norm = None
        else:
            self.register_buffer("no_norm", torch.zeros(1))  # the marker other SPAN code writes (a key of its files)
        self.conv_1 = Conv3XC(c, f, g)
        for i in range(1, config.n_blocks + 1):
            self.add_module(f"block_{i}", SPAB(f, m, g))
        self.conv_cat = nn.Conv2d(3 * f + m, f, 1)
        self.conv_2 = Conv3XC(f, f, g)
        self.upsampler = nn.Sequential(nn.Conv2d(f, c * s * s, 3, padding=1), nn.PixelShuffle(s))

    def blocks(self) -> list[SPAB]:
        return [getattr(self, f"block_{i}") for i in range(1, self.config.n_blocks + 1)]

    def deploy_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in the deploy layout (eval_conv only, branches folded): what the published files hold."""
        return deploy_state(self)

    def part_key(self, key: str) -> str:
        """conv_2, conv_cat and the upsampler are this scale's part (`up.x{s}.*`): an MSPAN has one per scale."""
        if key.startswith(("conv_2.", "conv_cat.", "upsampler.")):
            return f"up.x{self.config.scale}.{key}"
        return key

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        self.check_scale(scale)
        # the shifted input is not integer-valued: in bf16 it would lose up to half a gray level, so the input
        # shift and the first conv run in full precision (as the upsampler below, whose outputs are pixels)
        with full_precision(x):
            x = x.to(self.conv_1.eval_conv.weight.dtype)
            if self.no_norm is None:
                x = (x - self.mean.to(x.dtype)) * self.config.img_range
            feat = self.conv_1(x)  # (N, F, H, W)
        feat = to_autocast(feat)
        out, first_block, last_first = feat, None, feat
        for block in self.blocks():
            out, last_first = block(out)
            first_block = out if first_block is None else first_block
        assert first_block is not None, "a SPAN has at least one block"
        out = self.conv_cat(torch.cat([feat, self.conv_2(out), first_block, last_first], 1))  # (N, 3F+M -> F, H, W)
        up = self.upsampler[0]
        assert isinstance(up, nn.Conv2d)
        with full_precision(out):
            return self.upsampler(out.to(up.weight.dtype))  # (N, C, H*s, W*s)


# ---------------------------------------------------------------------------------------------- the family


def shape_of(state: StateDict, key: str) -> tuple[int, ...]:
    """The shape of `state[key]`; CheckpointError naming the key where the file has none."""
    if key not in state:
        raise CheckpointError(f"no key '{key}'")
    return tuple(state[key].shape)


def numbered_blocks(state: StateDict, pattern: str, what: str) -> int:
    """How many blocks `pattern` (one group: the number) finds; they must run 1..n."""
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    if not found or found != set(range(1, len(found) + 1)):
        raise CheckpointError(f"{what} are not numbered 1..n: found {sorted(found)}")
    return len(found)


def pixel_shuffle_scale(state: StateDict, key: str, n_colors: int, n_feats: int) -> int:
    """The factor of a `conv (F -> C*s*s) + PixelShuffle(s)` tail whose weight is `state[key]`."""
    shape = shape_of(state, key)
    s = math.isqrt(shape[0] // n_colors)
    if len(shape) != 4 or shape[1] != n_feats or s * s * n_colors != shape[0] or not 1 <= s <= MAX_SCALE:
        raise CheckpointError(
            f"{key} has shape {shape}; expected ({n_colors}*s*s, {n_feats}, 3, 3) for a scale s of 1..{MAX_SCALE}"
        )
    return s


def conv3xc_shape(state: StateDict, layer: str) -> tuple[int, ...]:
    """The (out, in, k, k) shape of a Conv3XC from its fused conv, or its skip where the file has no fused one."""
    key = f"{layer}.eval_conv.weight" if f"{layer}.eval_conv.weight" in state else f"{layer}.sk.weight"
    return shape_of(state, key)


def fill_fused(net: nn.Module, state: StateDict) -> StateDict:
    """`state` with the network's own `eval_conv` tensors where a training file left them out: `fold` sets them
    from the branches, so their values do not matter."""
    own = net.state_dict()
    missing = {
        k: v
        for k, v in own.items()
        if ".eval_conv." in k and k not in state and k.replace(".eval_conv.", ".sk.") in state
    }
    return {**state, **missing}


@register_family
class SPANFamily(Family):
    """SPAN in its official layouts: training (`<layer>.sk`, `<layer>.conv.{0,1,2}`, with or without the fused
    `<layer>.eval_conv`) and deploy (`<layer>.eval_conv` only), with or without the `no_norm` marker."""

    name = "span"
    config_class = SPANConfig
    key_patterns = (
        r"conv_1\.(eval_conv|sk)\.weight",
        r"block_\d+\.c1_r\.(eval_conv|sk)\.weight",
        r"conv_cat\.weight",
        r"conv_2\.(eval_conv|sk)\.weight",
        r"upsampler\.0\.weight",
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "span": dict(n_feats=48, mid_feats=48, n_blocks=6, gain=2),  # the paper's model (0.41M params x2 deployed)
    }

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> SPANConfig:
        f, c = conv3xc_shape(state, "conv_1")[:2]
        gain = 0
        if "conv_1.conv.0.weight" in state:
            inner = shape_of(state, "conv_1.conv.0.weight")[0]
            if inner % c:
                raise CheckpointError(f"conv_1.conv.0.weight has {inner} outputs; not a multiple of {c} inputs")
            gain = inner // c
        n_blocks = numbered_blocks(state, r"block_(\d+)\.c1_r\.", "SPAN blocks")
        m = conv3xc_shape(state, "block_1.c1_r")[0]
        cat = shape_of(state, "conv_cat.weight")
        if cat != (f, 3 * f + m, 1, 1):
            raise CheckpointError(f"conv_cat.weight has shape {cat}; expected {(f, 3 * f + m, 1, 1)}")
        saved = dict(meta.get("config", {}))
        norm = "no_norm" not in state
        return SPANConfig(
            scale=pixel_shuffle_scale(state, "upsampler.0.weight", c, f),
            n_feats=f,
            mid_feats=m,
            n_blocks=n_blocks,
            n_colors=c,
            gain=gain,
            norm=norm,
            img_range=float(saved.get("img_range", 255.0)),
            rgb_mean=tuple(saved["rgb_mean"]) if saved.get("rgb_mean") else None,
        )

    def build(self, config: SPANConfig) -> SPAN:
        return SPAN(config)

    def load(self, net: nn.Module, state: StateDict) -> None:
        """Strictly, then the branches (if any) are folded into eval_conv: a stale fused conv in a training file
        is replaced by the exact fold of its branches."""
        load_state_strict(net, fill_fused(net, state))
        fold_all(net)

    def precisions(self, config: SPANConfig) -> tuple[str, ...]:
        # Set5 Y-PSNR (superres eval, CPU autocast), fp32 / bf16: span_x2_ch48 38.070 / 38.059, span_x4_ch48
        # 32.203 / 32.178. That is with the input shift, conv_1 and the upsampler in fp32 (forward); all in bf16
        # they cost 0.032 and 0.048 dB. fp16 (CUDA) has 3 more significant bits than bf16 and the largest
        # activation on Set5 is about 40, far from fp16's 65504; not measured here (no GPU).
        return ("fp32", "bf16", "fp16")

    def receptive_radius(self, config: SPANConfig, scale: int) -> int:
        """Every Conv3XC is a 'same' 3x3 conv at LR (training form too: its 3x3 branch reads a 1-pixel zero pad),
        the attention is per pixel and conv_cat is 1x1. The longest path to conv_cat is conv_1 (1), N blocks of
        three convs (3N) and conv_2 (1); the upsampler's 3x3 adds 1, and the pixel shuffle none (at LR)."""
        return 1 + 3 * config.n_blocks + 1 + 1

    def activation_bytes_per_pixel(self, config: SPANConfig, scale: int) -> int:
        # live at once, float32: feat, block_1's output, the block in flight (in, two widths, out), the last
        # block's first conv, the concatenation (3F + M), its output, the upsampler's C*s*s and the output
        f, m = config.n_feats, config.mid_feats
        return 4 * (6 * f + 3 * m + (3 * f + m) + 2 * config.n_colors * scale**2)

    def describe(self, config: SPANConfig) -> str:
        c = config
        layout = f"training layout (gain {c.gain}, folded to 3x3 for inference)" if c.gain else "deploy layout"
        mid = f" (mid {c.mid_feats})" if c.mid_feats != c.n_feats else ""
        return f"SPAN x{c.scale}, {c.n_blocks} blocks x {c.n_feats} features{mid}, {layout}"

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        return net(x)

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> SPANConfig:
        if scales is not None and len(scales) != 1:
            raise ConfigError(f"a SPAN makes one scale, not x{', x'.join(map(str, scales))}")
        return SPANConfig(scale=scales[0] if scales else 4, n_colors=n_colors, **settings)
