"""Image quality metrics on the SR benchmark protocol: PSNR on BT.601 luma (MATLAB coefficients)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from superres.errors import ConfigError
from superres.imaging.color import rgb_to_y


def _prepare(sr: np.ndarray, hr: np.ndarray, shave: int, channel: str) -> tuple[np.ndarray, np.ndarray, float]:
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ConfigError(f"images differ in shape: {sr.shape} vs {hr.shape}")
    peak = 65535.0 if hr.dtype == np.uint16 else 255.0
    if not np.issubdtype(sr.dtype, np.integer):  # score what would be saved: rounded, clipped
        sr = np.clip(np.round(sr), 0, peak)
    sr, hr = sr.astype(np.float64), hr.astype(np.float64)
    if channel == "y" and sr.ndim == 3 and sr.shape[2] >= 3:
        sr, hr = rgb_to_y(sr[..., :3], peak), rgb_to_y(hr[..., :3], peak)
    elif channel not in ("y", "rgb"):
        raise ConfigError(f"channel must be 'y' or 'rgb', got '{channel}'")
    if shave > 0:
        sr, hr = sr[shave:-shave, shave:-shave], hr[shave:-shave, shave:-shave]
    return sr, hr, peak


def psnr(sr: np.ndarray, hr: np.ndarray, shave: int = 0, channel: str = "y") -> float:
    """PSNR in dB between an output and its reference, integer images (uint8 or uint16).

    A float `sr` is rounded and clipped to the reference's range first. `shave` pixels are cut from
    each border; channel='y' scores BT.601 luma of RGB images, 'rgb' all channels; grayscale images
    score their one channel either way.
    """
    a, b, peak = _prepare(sr, hr, shave, channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def ssim(sr: np.ndarray, hr: np.ndarray, shave: int = 0, channel: str = "y") -> float:
    """SSIM of Wang et al. (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03), same inputs as `psnr`.

    On Y (or a grayscale image) it is computed on the one channel; on RGB, averaged over channels.
    """
    from skimage.metrics import structural_similarity

    a, b, peak = _prepare(sr, hr, shave, channel)
    kwargs: dict[str, Any] = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=peak)
    # without gradient= or full=, structural_similarity returns the mean SSIM alone (skimage does not annotate it)
    if a.ndim == 3:
        return float(cast(float, structural_similarity(a, b, channel_axis=2, **kwargs)))
    return float(cast(float, structural_similarity(a, b, **kwargs)))
