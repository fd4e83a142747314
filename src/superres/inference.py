"""Running a model or an interpolation over a whole picture: colour handling, bit depth, alpha.

`upscale_picture` is what the CLI calls; `superres.upscale` wraps it for numpy arrays and PIL images.
"""

from __future__ import annotations

import numpy as np
import torch

from superres.errors import ConfigError
from superres.imageio import Picture
from superres.models.edsr import EDSR
from superres.resize import METHODS, imresize


@torch.inference_mode()
def run_model(model: EDSR, image: np.ndarray) -> np.ndarray:
    """Float (H, W, C) in 0..255 -> float32 (H*s, W*s, C), unclipped; C must equal the model's colours."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = model(x)  # (1, C, H*s, W*s)
    return y[0].permute(1, 2, 0).float().cpu().numpy()


def _rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 (JPEG) YCbCr, float, 0..255."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([y, (b - y) * 0.564 + 128, (r - y) * 0.713 + 128], axis=-1)


def _ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 128, ycc[..., 2] - 128
    r = y + 1.402 * cr
    b = y + 1.772 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.stack([r, g, b], axis=-1)


def model_upscale(model: EDSR, pixels: np.ndarray) -> np.ndarray:
    """Float 0..255 (H, W) or (H, W, 3) -> float, upscaled by the model, same layout.

    A grayscale image through an RGB model goes in as three equal channels and comes out as their
    mean; a colour image through a one-channel model has its luma upscaled by the model and its
    chroma by bicubic interpolation.
    """
    colors = model.config.n_colors
    if pixels.ndim == 2:
        out = run_model(model, np.repeat(pixels[..., None], colors, axis=2))
        return out.mean(axis=2)
    if colors == 3:
        return run_model(model, pixels)
    ycc = _rgb_to_ycbcr(pixels)
    y = run_model(model, ycc[..., :1])[..., 0]
    chroma = imresize(ycc[..., 1:], output_shape=y.shape, method="bicubic")
    return _ycbcr_to_rgb(np.dstack([y, chroma]))


def upscale_picture(picture: Picture, scale: int | None = None, model: EDSR | None = None,
                    method: str | None = None) -> Picture:
    """Upscale pixels with a model or an interpolation method; alpha goes through bicubic separately."""
    if (model is None) == (method is None):
        raise ConfigError("give exactly one of a model or an interpolation method")
    if model is not None:
        if scale is not None and scale != model.scale:
            raise ConfigError(f"the model upscales x{model.scale}, but x{scale} was asked for")
        peak = picture.peak
        px = picture.pixels.astype(np.float32) * (255.0 / peak)
        out = model_upscale(model, px) * (peak / 255.0)
        pixels = np.clip(np.floor(out + 0.5), 0, peak).astype(picture.pixels.dtype)
    else:
        if method not in METHODS:
            raise ConfigError(f"unknown method '{method}'; choose from {', '.join(sorted(METHODS))}")
        if scale is None or not scale > 0:
            raise ConfigError("an interpolation method needs a scale > 0")
        pixels = imresize(picture.pixels, scale, method=method)
    alpha = None
    if picture.alpha is not None:
        alpha = imresize(picture.alpha, output_shape=pixels.shape[:2], method="bicubic")
    return Picture(pixels, alpha, picture.icc_profile)
