"""RLFN (Kong et al., "Residual Local Feature Network for Efficient Super-Resolution", CVPRW 2022), laid out so
that state-dict keys equal the official ones. One network covers RLFN (52 features), RLFN-S (48) and the pruned
NTIRE 2022 entry (46 features, 48 inside the blocks, 4 blocks): all three read their widths off the shapes.

Read top to bottom: enhanced spatial attention, the residual local feature block, the network, its config, the
family.

    x (N, C, H, W), 0..255
      -> conv_1 (3x3, C -> F) = feat
      -> block_1 .. block_N (RLFB)     each: c1_r -> lrelu -> c2_r -> lrelu -> c3_r -> lrelu, + input,
                                       -> c5 (1x1) -> ESA
      -> conv_2 (3x3, F -> F) + feat
      -> upsampler.0 (3x3, F -> C*s*s) + PixelShuffle(s)
    y (N, C, H*s, W*s), 0..255 (not clipped; no mean anywhere)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import ConfigError
from superres.models.base import SRNet
from superres.models.edsr import full_precision
from superres.models.family import Family, FamilyConfig, StateDict, register_family
from superres.models.span import MAX_SCALE, numbered_blocks, pixel_shuffle_scale, shape_of

# LeakyReLU slope inside the blocks (the official `activation('lrelu', neg_slope=0.05)`)
NEG_SLOPE = 0.05
# ESA's strided 3x3 conv (no padding) and 7x7 max-pool (stride 3) need a side of at least 15 pixels
ESA_MIN_SIDE = 15


class ESA(nn.Module):
    """Enhanced spatial attention as RLFN has it (RFANet's ESA without `conv_max` and `conv3_`): a per-pixel,
    per-channel gate sigmoid(conv4(up(conv3(maxpool(conv2(conv1 x)))) + conv_f(conv1 x))) on x.

    conv1 and conv_f are 1x1 (F -> E, E -> E), conv2 a 3x3 with stride 2 and no padding, the pool 7x7 with
    stride 3, conv3 a 'same' 3x3, `up` bilinear back to x's size (align_corners False), conv4 1x1 (E -> F).
    The coarse branch sees a window of about 40 pixels and its upsampling grid depends on the picture's size,
    so outputs depend on the whole picture (no exact receptive radius).
    """

    def __init__(self, esa_feats: int, n_feats: int) -> None:
        super().__init__()
        e = esa_feats
        self.conv1 = nn.Conv2d(n_feats, e, 1)
        self.conv_f = nn.Conv2d(e, e, 1)
        self.conv2 = nn.Conv2d(e, e, 3, stride=2)
        self.conv3 = nn.Conv2d(e, e, 3, padding=1)
        self.conv4 = nn.Conv2d(e, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)  # (N, E, H, W)
        h, w = x.shape[-2:]
        coarse = reduced
        if h < ESA_MIN_SIDE or w < ESA_MIN_SIDE:
            # The official network cannot take so small a picture (the pool would have no window). Repeating the
            # last row and column up to 15 makes the pool one window over the whole picture: its max
            coarse = F.pad(reduced, (0, max(0, ESA_MIN_SIDE - w), 0, max(0, ESA_MIN_SIDE - h)), mode="replicate")
        coarse = F.max_pool2d(self.conv2(coarse), kernel_size=7, stride=3)  # (N, E, ~(H-15)/6+1, ~(W-15)/6+1)
        coarse = F.interpolate(self.conv3(coarse), size=(h, w), mode="bilinear", align_corners=False)  # (N, E, H, W)
        return x * torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 convs (F -> M -> M -> F) with LeakyReLU(0.05) after each, a
    residual, a 1x1 conv and ESA."""

    def __init__(self, n_feats: int, mid_feats: int, esa_feats: int) -> None:
        super().__init__()
        self.c1_r = nn.Conv2d(n_feats, mid_feats, 3, padding=1)
        self.c2_r = nn.Conv2d(mid_feats, mid_feats, 3, padding=1)
        self.c3_r = nn.Conv2d(mid_feats, n_feats, 3, padding=1)
        self.c5 = nn.Conv2d(n_feats, n_feats, 1)
        self.esa = ESA(esa_feats, n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), NEG_SLOPE)  # (N, M, H, W)
        out = F.leaky_relu(self.c2_r(out), NEG_SLOPE)
        out = F.leaky_relu(self.c3_r(out), NEG_SLOPE)  # (N, F, H, W)
        return self.esa(self.c5(out + x))


@dataclass(frozen=True)
class RLFNConfig(FamilyConfig):
    scale: int = 4
    n_feats: int = 52
    # width inside each block (c1_r's outputs): n_feats in RLFN and RLFN-S, 48 in the pruned NTIRE entry
    mid_feats: int = 52
    # ESA's inner width (16 in every published model)
    esa_feats: int = 16
    n_blocks: int = 6
    n_colors: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.scale <= MAX_SCALE:
            raise ConfigError(f"scale must be 1..{MAX_SCALE}, got {self.scale}")
        if min(self.n_feats, self.mid_feats, self.esa_feats, self.n_blocks) < 1:
            raise ConfigError(
                f"n_feats, mid_feats, esa_feats and n_blocks must be >= 1, got {self.n_feats}, {self.mid_feats}, "
                f"{self.esa_feats} and {self.n_blocks}"
            )
        if self.n_colors not in (1, 3):
            raise ConfigError(f"n_colors must be 1 or 3, got {self.n_colors}")


class RLFN(SRNet):
    """Residual Local Feature Network. Input and output (N, n_colors, H, W) in 0..255; the output is
    H*scale x W*scale and is not clipped."""

    arch = "rlfn"
    config_class = RLFNConfig

    def __init__(self, config: RLFNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else RLFNConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f, s = config.n_colors, config.n_feats, config.scale
        self.conv_1 = nn.Conv2d(c, f, 3, padding=1)
        for i in range(1, config.n_blocks + 1):
            self.add_module(f"block_{i}", RLFB(f, config.mid_feats, config.esa_feats))
        self.conv_2 = nn.Conv2d(f, f, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(f, c * s * s, 3, padding=1), nn.PixelShuffle(s))

    def blocks(self) -> list[RLFB]:
        return [getattr(self, f"block_{i}") for i in range(1, self.config.n_blocks + 1)]

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        self.check_scale(scale)
        feat = self.conv_1(x)  # (N, F, H, W)
        out = feat
        for block in self.blocks():
            out = block(out)
        out = self.conv_2(out) + feat
        up = self.upsampler[0]
        assert isinstance(up, nn.Conv2d)
        # outputs are 0..255 pixel values: in bf16 (8 significant bits) they would round by up to half a gray level
        with full_precision(out):
            return self.upsampler(out.to(up.weight.dtype))  # (N, C, H*s, W*s)


# ---------------------------------------------------------------------------------------------- the family


@register_family
class RLFNFamily(Family):
    """RLFN, RLFN-S and the pruned NTIRE 2022 RLFN in the official layout (bytedance/RLFN model_zoo)."""

    name = "rlfn"
    config_class = RLFNConfig
    key_patterns = (
        r"conv_1\.weight",
        r"block_\d+\.c1_r\.weight",
        r"block_\d+\.c5\.weight",
        r"block_\d+\.esa\.conv_f\.weight",
        r"conv_2\.weight",
        r"upsampler\.0\.weight",
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "rlfn": dict(n_feats=52, mid_feats=52, n_blocks=6),  # the paper's model, 0.54M params at x4
        "rlfn-s": dict(n_feats=48, mid_feats=48, n_blocks=6),  # the paper's small model, 0.47M at x4
        "rlfn-ntire": dict(n_feats=46, mid_feats=48, n_blocks=4),  # the pruned NTIRE 2022 entry, 0.32M at x4
    }

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> RLFNConfig:
        f, c = shape_of(state, "conv_1.weight")[:2]
        return RLFNConfig(
            scale=pixel_shuffle_scale(state, "upsampler.0.weight", c, f),
            n_feats=f,
            mid_feats=shape_of(state, "block_1.c1_r.weight")[0],
            esa_feats=shape_of(state, "block_1.esa.conv1.weight")[0],
            n_blocks=numbered_blocks(state, r"block_(\d+)\.c1_r\.", "RLFN blocks"),
            n_colors=c,
        )

    def build(self, config: RLFNConfig) -> RLFN:
        return RLFN(config)

    def pixel_range(self, config: RLFNConfig) -> float:
        return 255.0

    def precisions(self, config: RLFNConfig) -> tuple[str, ...]:
        # Set5 Y-PSNR (superres eval, CPU autocast), fp32 / bf16, with the upsampler in fp32 (forward): rlfn_x2
        # 38.066 / 38.056, rlfn_x4 32.238 / 32.235, rlfn_s_x2 38.047 / 38.036, rlfn_s_x4 32.240 / 32.230,
        # rlfn_ntire_x4 32.097 / 32.087 (all in bf16, rlfn_x2 costs 0.016 dB). fp16 (CUDA) has 3 more significant
        # bits than bf16 and the largest activation on Set5 is about 4000, far from fp16's 65504; not measured here.
        return ("fp32", "bf16", "fp16")

    def receptive_radius(self, config: RLFNConfig, scale: int) -> None:
        """None: ESA's coarse branch (strided conv, 7x7/3 max-pool, 3x3, bilinear back to the picture's size)
        places its samples by the ratio of the picture's size to the pooled size, so an output pixel changes
        with the size of the tile it is computed in, however wide the margin: no margin makes tiles exact.
        Tiles are approximate (the Upscaler's APPROXIMATE_MARGIN, 32 LR pixels, or the caller's overlap)."""
        return None

    def activation_bytes_per_pixel(self, config: RLFNConfig, scale: int) -> int:
        # live at once, float32: feat, the block's input, two mid-width maps, its output, ESA's E-wide maps (the
        # reduced one, its conv_f, the upsampled coarse one) and gate, the upsampler's C*s*s and the output
        f, m, e = config.n_feats, config.mid_feats, config.esa_feats
        return 4 * (4 * f + 2 * m + 3 * e + 2 * config.n_colors * scale**2)

    def export_min_side(self, config: Any) -> int:
        return ESA_MIN_SIDE  # smaller pictures are padded inside the attention branch, a branch ONNX does not trace

    def describe(self, config: RLFNConfig) -> str:
        c = config
        mid = f" (mid {c.mid_feats})" if c.mid_feats != c.n_feats else ""
        return f"RLFN x{c.scale}, {c.n_blocks} blocks x {c.n_feats} features{mid}, ESA width {c.esa_feats}"

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        return net(x)

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> RLFNConfig:
        if scales is not None and len(scales) != 1:
            raise ConfigError(f"an RLFN makes one scale, not x{', x'.join(map(str, scales))}")
        return RLFNConfig(scale=scales[0] if scales else 4, n_colors=n_colors, **settings)
