"""BT.601 YCbCr as MATLAB's rgb2ycbcr / ycbcr2rgb compute it (studio range: Y 16..235, Cb/Cr 16..240)."""

from __future__ import annotations

import numpy as np

# rows: Y, Cb, Cr; applied to RGB in 0..255, divided by 255, plus the offsets
_MATRIX = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_y(image: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """BT.601 luma as MATLAB computes it, for RGB values in 0..peak; float64, 16..235 at 8 bit.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on 0-255 values (scaled for other peaks).
    """
    rgb = np.asarray(image, dtype=np.float64) * (255.0 / peak)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return y * (peak / 255.0)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in 0..255 -> float64 YCbCr (MATLAB's rgb2ycbcr on 0-255 values)."""
    return np.asarray(rgb, dtype=np.float64) @ _MATRIX.T + _OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """The inverse of rgb_to_ycbcr: float64 RGB in 0..255 (unclipped)."""
    return (np.asarray(ycbcr, dtype=np.float64) - _OFFSET) @ np.linalg.inv(_MATRIX).T
