"""What a file says about its own damage: the JPEG quality its quantisation tables were made for, and the
noise level of its pixels. `--denoise auto` chooses the photo model's strength from these two."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

NOISE_CROP = 512  # the noise level is measured on the central crop of at most this side (fast on any size)


@functools.lru_cache(maxsize=None)
def _reference_tables() -> dict[int, np.ndarray]:
    """The luminance quantisation table libjpeg writes at each quality 1-100, as Pillow reports it."""
    tables = {}
    tile = Image.new("L", (8, 8))
    for q in range(1, 101):
        buf = io.BytesIO()
        tile.save(buf, "JPEG", quality=q)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            tables[q] = np.asarray(im.quantization[0], dtype=np.float64)
    return tables


def jpeg_quality(quantization: dict | None) -> int | None:
    """The libjpeg quality (1-100) whose luminance table is nearest (in log ratio) to a JPEG's, from Pillow's
    `Image.quantization` of an opened JPEG; None without tables. For files made by other encoders (cameras,
    Photoshop) it is the libjpeg quality of about the same compression."""
    if not quantization or 0 not in quantization:
        return None
    table = np.asarray(quantization[0], dtype=np.float64)
    if table.shape != (64,):
        return None
    logs = np.log(np.maximum(table, 1))
    errors = {q: float(np.abs(logs - np.log(ref)).mean()) for q, ref in _reference_tables().items()}
    return min(errors, key=lambda q: (errors[q], -q))  # ties (the tables saturate near 100): the higher quality


def jpeg_file_quality(data: bytes) -> int | None:
    """jpeg_quality of a JPEG file held in memory."""
    with Image.open(io.BytesIO(data)) as im:
        return jpeg_quality(getattr(im, "quantization", None))


def noise_sigma(pixels: np.ndarray) -> float:
    """The standard deviation of white Gaussian noise in the pixels, in 8-bit gray levels: scikit-image's
    wavelet estimator (Donoho's median of the finest diagonal band), averaged over channels, on the central
    crop of at most NOISE_CROP pixels a side. A clean photo reads about 0.5-1.5 (fine texture counts too)."""
    from skimage.restoration import estimate_sigma

    h, w = pixels.shape[:2]
    y, x = max(0, (h - NOISE_CROP) // 2), max(0, (w - NOISE_CROP) // 2)
    crop = pixels[y:y + NOISE_CROP, x:x + NOISE_CROP].astype(np.float64)
    if pixels.dtype == np.uint16:
        crop = crop / 257.0
    if min(crop.shape[:2]) < 4:
        return 0.0
    return float(estimate_sigma(crop, channel_axis=-1 if crop.ndim == 3 else None, average_sigmas=True))
