"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCV-W 2021), super-resolution.

Laid out so that state-dict keys equal the official release's, so its files load strictly: the classical
(pixelshuffle), lightweight (pixelshuffledirect) and real-world (nearest+conv) SR models. Read top to bottom:
window helpers, attention, the Swin block, the residual group (RSTB), the upsamplers, the config, the
network, the family.

    x (N, C, H, W), 0..1
      -> - mean (DIV2K's for RGB), * img_range; reflect-pad H and W to multiples of the window
      -> conv_first (3x3, C->E)                                          shallow features F0
      -> tokens (N, H*W, E) -> patch_embed.norm
      -> layers.0 .. layers.{K-1}: RSTB = Swin blocks (W-MSA, then shifted SW-MSA, alternating) -> conv
         (one 3x3, or '3conv': 3x3 E->E/4, 1x1, 3x3 E/4->E), + the RSTB's input
      -> norm -> back to (N, E, H, W) -> conv_after_body, + F0
      -> the upsampler:
           pixelshuffle (classical):       conv_before_upsample.0 (E->F) + LeakyReLU,
                                           upsample.{0,2,..} (conv F->4F + shuffle 2, or F->9F + shuffle 3),
                                           conv_last (F->C)
           pixelshuffledirect (light):     upsample.0 (conv E->C*s^2) + shuffle s
           nearest+conv (real-world):      conv_before_upsample.0 (E->F) + LeakyReLU, nearest x2 + conv_up1,
                                           [nearest x2 + conv_up2 at x4], conv_hr, conv_last (F->C)
      -> / img_range + mean; crop the padding away
    y (N, C, H*s, W*s), 0..1 (not clipped)

Attention sees one window (8x8 in the official models); shifting the windows in every other block lets
information travel further with each block, so an output pixel depends on much of the picture: the family
states no receptive radius, and tiles are approximate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import nn
from torch.nn import functional as F

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import DIV2K_RGB_MEAN, full_precision
from superres.models.family import Family, FamilyConfig, StateDict, load_state_strict, register_family

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")
RESIDUAL_CONNECTIONS = ("1conv", "3conv")
MASKED = -100.0  # the attention logit added between tokens that a shifted window brought together from afar


# ---------------------------------------------------------------------------------------------- windows


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, H, W, C) with H and W multiples of `window` -> (N * H/w * W/w, w*w, C), windows in row-major order."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)  # (N*nW, w*w, C)


def window_merge(windows: torch.Tensor, window: int, n: int, h: int, w: int) -> torch.Tensor:
    """The inverse of window_partition: (N*nW, w*w, C) -> (N, H, W, C)."""
    c = windows.shape[-1]
    x = windows.reshape(n, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) int64: for tokens i and j of a window, the row of the bias table holding their offset
    (dy + w-1) * (2w-1) + (dx + w-1)."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack((ys.flatten(), xs.flatten()))  # (2, w*w)
    offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, w*w, w*w), each in 0..2w-2
    return offsets[0] * (2 * window - 1) + offsets[1]


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, w*w, w*w) float32: 0 between tokens of a shifted window that came from the same region of the
    (h, w) picture, MASKED between tokens that the cyclic shift brought together from opposite edges.

    The regions are 3 x 3 bands: rows [0, h-w), [h-w, h-shift), [h-shift, h), likewise for columns. Built
    from the sizes with tensor operations only, so an ONNX trace keeps h and w dynamic."""
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    row_band = (rows >= h - window).long() + (rows >= h - shift).long()  # (h,) in 0..2
    col_band = (cols >= w - window).long() + (cols >= w - shift).long()  # (w,)
    region = row_band[:, None] * 3 + col_band[None, :]  # (h, w)
    region = window_partition(region[None, :, :, None], window)[..., 0]  # (nW, w*w)
    apart = region[:, None, :] != region[:, :, None]  # (nW, w*w, w*w)
    return apart.float() * MASKED


def reflect_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """(size + pad,) int64: the rows (or columns) of a `size`-long axis that reflection padding by `pad` at the
    end reads, reflecting back and forth where pad >= size (a single row is repeated). Tensor operations only,
    so that an ONNX trace keeps the sizes dynamic."""
    index = torch.arange(size + pad, device=device)
    period = torch.clamp(torch.as_tensor(2 * size - 2, device=device), min=1)
    index = index % period
    return torch.where(index < size, index, period - index)


def reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """x (N, C, H, W) padded by reflection at the bottom and right: (N, C, H+pad_h, W+pad_w). A picture no larger
    than its padding (smaller than a window) is reflected back and forth, and a single row or column repeated."""
    h, w = x.shape[-2:]
    tracing = torch.jit.is_tracing()  # pyright: ignore[reportPrivateImportUsage] - public, not in torch.jit's __all__
    if not tracing and pad_h < h and pad_w < w:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")  # the same values, without a gather
    x = x.index_select(2, reflect_index(h, pad_h, x.device))
    return x.index_select(3, reflect_index(w, pad_w, x.device))


# ---------------------------------------------------------------------------------------------- blocks


class WindowAttention(nn.Module):
    """Multi-head self-attention within one window, with a learnt bias per head for each relative offset.

    Keys: `qkv` (E->3E), `proj` (E->E), `relative_position_bias_table` ((2w-1)^2, heads). The index into
    the table is computed here (a buffer the files may or may not hold; it is not part of the state dict).
    """

    relative_position_index: torch.Tensor

    def __init__(self, dim: int, window: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, w*w, E) with B = N * nW windows; mask (nW, w*w, w*w) additive, or None -> (B, w*w, E)."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, h, n, d)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]  # (n*n, heads)
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            windows = mask.shape[0]
            attn = (attn.reshape(-1, windows, self.heads, n, n) + mask[None, :, None]).reshape(-1, self.heads, n, n)
        out = attn.softmax(dim=-1) @ v  # (B, heads, n, d)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 (E -> E*mlp_ratio), GELU, fc2 (back to E)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """One Swin Transformer layer: x + W-MSA(norm1(x)) (windows shifted by `shift` when non-zero), then
    x + MLP(norm2(x)). Keys: norm1, attn.*, norm2, mlp.fc1, mlp.fc2."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        """x (N, H*W, E) tokens of an (H, W) picture, H and W multiples of the window -> the same shape."""
        h, w = size
        n, _, c = x.shape
        y = self.norm1(x).reshape(n, h, w, c)  # (N, H, W, E)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), mask if self.shift else None)  # (N*nW, w*w, E)
        y = window_merge(y, self.window, n, h, w)  # (N, H, W, E)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(n, h * w, c)
        return x + self.mlp(self.norm2(x))


class SwinGroup(nn.Module):
    """The Swin blocks of one RSTB (`residual_group.blocks.{j}`), shifted in every other block."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, 0 if j % 2 == 0 else window // 2, mlp_ratio, qkv_bias) for j in range(depth)
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, size, mask)
        return x


def residual_conv(dim: int, kind: str) -> nn.Module:
    """The convolution closing an RSTB (and the body): '1conv' is one 3x3; '3conv' (the large real-world
    model's, to save parameters) is 3x3 E->E/4, LeakyReLU(0.2), 1x1, LeakyReLU(0.2), 3x3 E/4->E (keys 0, 2, 4)."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, padding=1)
    quarter = dim // 4
    return nn.Sequential(
        nn.Conv2d(dim, quarter, 3, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(quarter, quarter, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(quarter, dim, 3, padding=1),
    )


def to_image(tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H*W, E) -> (N, E, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], size[0], size[1])


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin blocks, then a convolution on the picture, plus the input."""

    def __init__(self, config: SwinIRConfig, layer: int) -> None:
        super().__init__()
        c = config
        heads = c.num_heads[layer]
        self.residual_group = SwinGroup(c.embed_dim, c.depths[layer], heads, c.window_size, c.mlp_ratio, c.qkv_bias)
        self.conv = residual_conv(c.embed_dim, c.resi_connection)

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        """x (N, H*W, E) -> the same shape."""
        y = self.conv(to_image(self.residual_group(x, size, mask), size))  # (N, E, H, W)
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """The LayerNorm applied to the shallow features as tokens (`patch_embed.norm`; patches are 1x1)."""

    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, E, H, W) -> (N, H*W, E)."""
        return self.norm(x.flatten(2).transpose(1, 2))


def pixelshuffle_upsampler(scale: int, feat: int) -> nn.Sequential:
    """x2^k as k times (conv F->4F, PixelShuffle(2)); x3 as conv F->9F, PixelShuffle(3) (keys upsample.{0,2,..})."""
    layers: list[nn.Module] = []
    if scale == 3:
        layers += [nn.Conv2d(feat, 9 * feat, 3, padding=1), nn.PixelShuffle(3)]
    else:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(feat, 4 * feat, 3, padding=1), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class SwinIRConfig(FamilyConfig):
    scale: int = 2
    n_colors: int = 3
    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)  # Swin blocks in each RSTB
    num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6)  # attention heads in each RSTB
    window_size: int = 8
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    # LayerNorm on the shallow features before the first RSTB (the official models all have it)
    patch_norm: bool = True
    upsampler: str = "pixelshuffle"  # 'pixelshuffle' (classical), 'pixelshuffledirect' (lightweight), 'nearest+conv'
    resi_connection: str = "1conv"  # '3conv' in the large real-world model: fewer parameters per RSTB
    # width of the reconstruction convs after the body (pixelshuffle, nearest+conv); 'pixelshuffledirect' has none
    num_feat: int = 64
    # the network works on (x - mean) * img_range; the official SR models use 1.0
    img_range: float = 1.0
    # per-channel mean (0..1) subtracted inside the network; None: DIV2K's for RGB, 0 for one channel (official)
    rgb_mean: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        mean = self.rgb_mean if self.rgb_mean is not None else DIV2K_RGB_MEAN if self.n_colors == 3 else (0.0,)
        object.__setattr__(self, "rgb_mean", tuple(float(m) for m in mean))
        self._check_body()
        self._check_reconstruction()

    def _check_body(self) -> None:
        if self.n_colors not in (1, 3):
            raise ConfigError(f"n_colors must be 1 or 3, got {self.n_colors}")
        if not self.depths or len(self.depths) != len(self.num_heads) or min(self.depths) < 1:
            raise ConfigError(
                f"depths and num_heads need one entry >= 1 per RSTB, got {self.depths} and {self.num_heads}"
            )
        if min(self.num_heads) < 1 or any(self.embed_dim % h for h in self.num_heads):
            raise ConfigError(f"embed_dim {self.embed_dim} must be a multiple of every head count {self.num_heads}")
        if self.window_size < 2:
            raise ConfigError(f"window_size must be >= 2, got {self.window_size}")
        if not self.mlp_ratio > 0 or not self.img_range > 0:
            raise ConfigError(f"mlp_ratio and img_range must be > 0, got {self.mlp_ratio} and {self.img_range}")
        if self.resi_connection not in RESIDUAL_CONNECTIONS or (self.resi_connection == "3conv" and self.embed_dim < 4):
            raise ConfigError(f"resi_connection must be 1conv or 3conv (embed_dim >= 4), got {self.resi_connection}")
        if len(self.rgb_mean or ()) != self.n_colors:
            raise ConfigError(f"rgb_mean needs {self.n_colors} values, got {self.rgb_mean}")

    def _check_reconstruction(self) -> None:
        allowed = {
            "pixelshuffle": (2, 3, 4, 8),
            "pixelshuffledirect": (2, 3, 4, 8),
            "nearest+conv": (2, 4),  # the official code has x4 only; x2 drops conv_up2
        }
        if self.upsampler not in allowed:
            raise ConfigError(f"upsampler must be one of {', '.join(UPSAMPLERS)}, got '{self.upsampler}'")
        if self.scale not in allowed[self.upsampler]:
            scales = ", ".join(map(str, allowed[self.upsampler]))
            raise ConfigError(f"the {self.upsampler} upsampler makes x{scales.replace(', ', ', x')}, not x{self.scale}")
        if self.num_feat < 1:
            raise ConfigError(f"num_feat must be >= 1, got {self.num_feat}")


# ---------------------------------------------------------------------------------------------- the network


class SwinIR(SRNet):
    """SwinIR for super-resolution: float (N, n_colors, H, W) in 0..1, any H and W -> (N, n_colors, H*s, W*s),
    not clipped."""

    arch = "swinir"
    config_class = SwinIRConfig
    mean: torch.Tensor

    def __init__(self, config: SwinIRConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else SwinIRConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, e = config.n_colors, config.embed_dim
        self.register_buffer("mean", torch.tensor(config.rgb_mean).view(1, c, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(c, e, 3, padding=1)
        self.patch_embed = PatchEmbed(e, config.patch_norm)
        self.layers = nn.ModuleList(RSTB(config, i) for i in range(len(config.depths)))
        self.norm = nn.LayerNorm(e)
        self.conv_after_body = residual_conv(e, config.resi_connection)
        self._build_upsampler()
        self.apply(_init_weights)

    def _build_upsampler(self) -> None:
        c, e, f, s = self.config.n_colors, self.config.embed_dim, self.config.num_feat, self.config.scale
        if self.config.upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(e, c * s * s, 3, padding=1), nn.PixelShuffle(s))
            return
        # LeakyReLU's default slope (0.01) here, as in the official models; 0.2 inside nearest+conv
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(e, f, 3, padding=1), nn.LeakyReLU(inplace=True))
        if self.config.upsampler == "pixelshuffle":
            self.upsample = pixelshuffle_upsampler(s, f)
        else:
            self.conv_up1 = nn.Conv2d(f, f, 3, padding=1)
            if s == 4:
                self.conv_up2 = nn.Conv2d(f, f, 3, padding=1)
            self.conv_hr = nn.Conv2d(f, f, 3, padding=1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.conv_last = nn.Conv2d(f, c, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features: (N, E, H, W), H and W multiples of the window -> the same shape."""
        size = (x.shape[2], x.shape[3])
        window = self.config.window_size
        shifted = any(d > 1 for d in self.config.depths)
        mask = shifted_window_mask(size[0], size[1], window, window // 2, x.device) if shifted else None
        tokens = self.patch_embed(x)  # (N, H*W, E)
        for layer in self.layers:
            tokens = layer(tokens, size, mask)
        return to_image(self.norm(tokens), size)  # (N, E, H, W)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, E, H, W) -> the image (N, C, H*s, W*s), before the mean is added back. The last
        convolution runs in float32 under autocast: its outputs are pixel values."""
        if self.config.upsampler == "pixelshuffledirect":
            with full_precision(x):
                return self.upsample(x.to(cast(nn.Conv2d, self.upsample[0]).weight.dtype))
        x = self.conv_before_upsample(x)  # (N, F, H, W)
        if self.config.upsampler == "pixelshuffle":
            x = self.upsample(x)  # (N, F, H*s, W*s)
        else:
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))  # (N, F, 2H, 2W)
            if self.config.scale == 4:
                x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))  # (N, F, 4H, 4W)
            x = self.lrelu(self.conv_hr(x))
        with full_precision(x):
            return self.conv_last(x.to(self.conv_last.weight.dtype))  # (N, C, H*s, W*s)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """(N, C, H, W) in 0..1 -> (N, C, H*s, W*s); `scale` None or the network's own."""
        s = self.check_scale(scale)
        h, w = x.shape[-2:]
        window = self.config.window_size
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.config.img_range
        x = reflect_pad(x, (window - h % window) % window, (window - w % window) % window)  # (N, C, Hp, Wp)
        with full_precision(x):
            shallow = self.conv_first(x.to(self.conv_first.weight.dtype))  # (N, E, Hp, Wp)
        x = self.conv_after_body(self.forward_features(shallow)) + shallow
        x = self.reconstruct(x) / self.config.img_range + mean  # (N, C, Hp*s, Wp*s)
        return x[:, :, : h * s, : w * s]


def _init_weights(module: nn.Module) -> None:
    """Swin's initialisation for training from scratch: linear weights and bias tables from a truncated
    normal (std 0.02), linear biases 0, LayerNorms the identity."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, WindowAttention):
        nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)


# ---------------------------------------------------------------------------------------------- the family

_BLOCK = r"layers\.(\d+)\.residual_group\.blocks\.(\d+)\."
_TABLE = _BLOCK + r"attn\.relative_position_bias_table"
# every key an official file has under `layers.`: anything else there is another family's (HAT's conv_block and
# overlap_attn, Swin2SR's cpb_mlp and logit_scale, ...)
_LAYER_KEY = re.compile(
    _BLOCK + r"(norm[12]\.(weight|bias)|attn\.(relative_position_bias_table|relative_position_index|qkv\.(weight|bias)"
    r"|proj\.(weight|bias))|mlp\.fc[12]\.(weight|bias)|attn_mask)"
    r"|layers\.\d+\.conv\.(\d+\.)?(weight|bias)"
)
_DERIVED = re.compile(_BLOCK + r"(attn\.relative_position_index|attn_mask)")


def _numbered(found: set[int], what: str) -> int:
    """How many of something numbered 0..n-1 there are; CheckpointError when the numbers have gaps."""
    if not found or found != set(range(len(found))):
        raise CheckpointError(f"{what} are not numbered 0..n-1: found {sorted(found)}")
    return len(found)


def _shape(state: StateDict, key: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"no key '{key}'")
    return tuple(state[key].shape)


def _read_body(state: StateDict) -> dict[str, Any]:
    """Embedding, depths, heads, window and MLP ratio from the shapes of the Swin blocks."""
    embed_dim, n_colors = _shape(state, "conv_first.weight")[:2]
    tables = {(int(m.group(1)), int(m.group(2))): k for k in state if (m := re.fullmatch(_TABLE, k))}
    n_layers = _numbered({i for i, _ in tables}, "RSTBs (layers.N)")
    depths = tuple(
        _numbered({j for i, j in tables if i == layer}, f"layers.{layer}.residual_group.blocks.N")
        for layer in range(n_layers)
    )
    windows, heads = [], []
    for layer in range(n_layers):
        first = tables[layer, 0]
        shapes = {tuple(state[tables[layer, j]].shape) for j in range(depths[layer])}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise CheckpointError(f"{first}: the blocks of layers.{layer} disagree on its shape ({sorted(shapes)})")
        rows, layer_heads = next(iter(shapes))
        side = math.isqrt(rows)
        if side * side != rows or side % 2 == 0:
            raise CheckpointError(f"{first} has {rows} rows; expected (2 * window - 1)^2")
        windows.append((side + 1) // 2)
        if windows[layer] != windows[0]:
            raise CheckpointError(f"{first} is for window {windows[layer]}, not {windows[0]} as in layers.0")
        heads.append(layer_heads)
    hidden = _shape(state, "layers.0.residual_group.blocks.0.mlp.fc1.weight")[0]
    return dict(
        n_colors=n_colors,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=tuple(heads),
        window_size=windows[0],
        mlp_ratio=hidden / embed_dim,
        qkv_bias="layers.0.residual_group.blocks.0.attn.qkv.bias" in state,
        patch_norm="patch_embed.norm.weight" in state,
        resi_connection="3conv" if "layers.0.conv.0.weight" in state else "1conv",
    )


def _read_upsampler(state: StateDict, n_colors: int, embed_dim: int) -> dict[str, Any]:
    """The upsampler kind, scale and reconstruction width from its keys and shapes."""
    if "conv_up1.weight" in state:
        num_feat = _shape(state, "conv_before_upsample.0.weight")[0]
        return dict(upsampler="nearest+conv", scale=4 if "conv_up2.weight" in state else 2, num_feat=num_feat)
    if "conv_before_upsample.0.weight" in state:
        num_feat = _shape(state, "conv_before_upsample.0.weight")[0]
        convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"upsample\.(\d+)\.weight", k)))
        out = _shape(state, "upsample.0.weight")[0]
        if out == 9 * num_feat and convs == [0]:
            return dict(upsampler="pixelshuffle", scale=3, num_feat=num_feat)
        if out != 4 * num_feat or convs != list(range(0, 2 * len(convs), 2)):
            raise CheckpointError(f"upsample.0.weight has {out} outputs (convs {convs}); expected 4x or 9x {num_feat}")
        return dict(upsampler="pixelshuffle", scale=2 ** len(convs), num_feat=num_feat)
    if "upsample.0.weight" in state:
        out, width = _shape(state, "upsample.0.weight")[:2]
        scale = math.isqrt(out // n_colors)
        if scale * scale * n_colors != out or width != embed_dim:
            raise CheckpointError(
                f"upsample.0.weight has shape {(out, width)}; expected ({n_colors} x s^2, {embed_dim})"
            )
        return dict(upsampler="pixelshuffledirect", scale=scale)
    raise CheckpointError(
        "no upsampler (conv_before_upsample / upsample / conv_up1): a SwinIR for denoising or JPEG artefacts, "
        "not super-resolution"
    )


@register_family
class SwinIRFamily(Family):
    """SwinIR in the official layout (`conv_first`, `patch_embed.norm`, `layers.{i}.residual_group.blocks.{j}.*`,
    `layers.{i}.conv`, `norm`, `conv_after_body`, then the upsampler's keys), with or without the buffers the
    official code saves (`attn.relative_position_index`, `attn_mask`): they are computed, never read."""

    name = "swinir"
    config_class = SwinIRConfig
    key_patterns = (
        r"conv_first\.weight",
        _TABLE,
        _BLOCK + r"attn\.qkv\.weight",
        _BLOCK + r"mlp\.fc1\.weight",
        r"layers\.\d+\.conv\.(\d+\.)?weight",
        r"norm\.weight",
        r"conv_after_body\.(\d+\.)?weight",
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # classical SR (DIV2K / DF2K): 11.8M parameters at x2
        "swinir-classical": dict(embed_dim=180, depths=(6,) * 6, num_heads=(6,) * 6, upsampler="pixelshuffle"),
        # lightweight SR: 0.9M parameters at x2
        "swinir-lightweight": dict(embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4, upsampler="pixelshuffledirect"),
        # real-world SR (BSRGAN degradations, GAN-trained), x4
        "swinir-realworld": dict(embed_dim=180, depths=(6,) * 6, num_heads=(6,) * 6, upsampler="nearest+conv"),
        "swinir-realworld-large": dict(
            embed_dim=240, depths=(6,) * 9, num_heads=(8,) * 9, upsampler="nearest+conv", resi_connection="3conv"
        ),
    }

    def first_missing(self, state: StateDict) -> str | None:
        """The first key pattern no key matches; else, where a key under `layers.` is not one of SwinIR's (other
        Swin-based families share its outer keys), what is missing is a file of SwinIR's keys only there. So
        `recognize` declines such a file, and detection's message names the foreign key."""
        missing = super().first_missing(state)
        foreign = next((k for k in state if k.startswith("layers.") and not _LAYER_KEY.fullmatch(k)), None)
        if missing is None and foreign is not None:
            return f"SwinIR's layer keys only (not {foreign})"
        return missing

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> SwinIRConfig:
        body = _read_body(state)
        up = _read_upsampler(state, body["n_colors"], body["embed_dim"])
        out = _shape(state, "conv_last.weight")[0] if "conv_last.weight" in state else body["n_colors"]
        if out != body["n_colors"]:
            raise CheckpointError(f"conv_last.weight makes {out} channels from {body['n_colors']}; expected the same")
        saved = dict(meta.get("config", {}))
        extra = {k: saved[k] for k in ("img_range", "rgb_mean") if saved.get(k) is not None}
        try:
            return SwinIRConfig(**body, **up, **extra)
        except ConfigError as e:
            raise CheckpointError(f"the shapes give no valid SwinIR: {e.message}") from None

    def build(self, config: SwinIRConfig) -> SwinIR:
        return SwinIR(config)

    def load(self, net: nn.Module, state: StateDict) -> None:
        """Strictly, after dropping the attention masks and checking then dropping the position indices a file
        may hold (both are computed from the window size; a file's masks are for its training patch size)."""
        own = dict(net.named_buffers())
        kept = {}
        for key, value in state.items():
            if not _DERIVED.fullmatch(key):
                kept[key] = value
            elif key.endswith("attn_mask"):
                continue
            elif key not in own:
                kept[key] = value  # an index for a block the network has not: strict loading names it
            elif value.shape != own[key].shape or not torch.equal(value.long(), own[key]):
                raise CheckpointError(
                    f"{key} {tuple(value.shape)} is not the index of a {math.isqrt(len(own[key]))}-wide window"
                )
        load_state_strict(net, kept)

    def precisions(self, config: SwinIRConfig) -> tuple[str, ...]:
        # fp32 only. No official file was at hand to measure; on random weights (the presets' own init, a 64x64
        # photo crop, CPU autocast) bf16 strayed up to 1.3 gray levels from fp32 (lightweight x2) and 0.55
        # (classical x2), over the 0.5 allowed, even with the first and last convolutions in fp32
        return ("fp32",)

    def receptive_radius(self, config: SwinIRConfig, scale: int) -> None:
        """None: shifted windows spread each output pixel's context over much of the picture."""
        return None

    def activation_bytes_per_pixel(self, config: SwinIRConfig, scale: int) -> int:
        # float32 per LR pixel: about 8 token maps of E (stream, norm, windows, q/k/v, attention output), the
        # MLP's hidden map, 3 copies of the logits (heads x w^2: with bias, mask, softmax), the reconstruction
        # at output resolution (about 3 maps of num_feat), and the output
        c = config
        tokens = 8 * c.embed_dim + 2 * int(c.embed_dim * c.mlp_ratio) + 3 * max(c.num_heads) * c.window_size**2
        width = c.n_colors if c.upsampler == "pixelshuffledirect" else c.num_feat
        return 4 * (tokens + 3 * width * scale**2 + 2 * c.n_colors * scale**2)

    def describe(self, config: SwinIRConfig) -> str:
        c = config
        depths = f"{len(c.depths)}x{c.depths[0]}" if len(set(c.depths)) == 1 else "+".join(map(str, c.depths))
        heads = str(c.num_heads[0]) if len(set(c.num_heads)) == 1 else "/".join(map(str, c.num_heads))
        return (
            f"SwinIR x{c.scale} ({c.upsampler}), {depths} blocks x {c.embed_dim} dims, {heads} heads, "
            f"window {c.window_size}, {c.resi_connection}"
        )

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        return net(x)

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> SwinIRConfig:
        if scales is not None and len(scales) != 1:
            raise ConfigError(f"a SwinIR network makes one scale, not x{', x'.join(map(str, scales))}")
        default = 4 if settings.get("upsampler") == "nearest+conv" else 2
        return SwinIRConfig(scale=scales[0] if scales else default, n_colors=n_colors, **settings)
