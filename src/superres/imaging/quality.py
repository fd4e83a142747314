"""What a file says about its own damage: the JPEG quality its quantisation tables were made for, and the
noise level of its pixels. `--denoise auto` chooses the photo model's strength from these two."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

NOISE_CROP = 512  # the noise level is measured on the central crop of at most this side (fast on any size)


@functools.cache
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
    """The standard deviation of white noise in the pixels, in 8-bit gray levels, measured where the picture
    is flat.

    The finest Haar level is cut into blocks of 16x16 pixels; the flattest tenth of the blocks (least
    horizontal and vertical detail, |LH| + |HL|) are kept, and the noise is Donoho's median absolute
    deviation of their diagonal detail (HH) / 0.6745, averaged over channels. For Gaussian noise the four
    Haar bands are independent, so choosing blocks by LH and HL does not bias the HH estimate; choosing flat
    blocks keeps texture from reading as noise, which the whole-image estimator (scikit-image's
    `estimate_sigma`) does: clean, textured photos read 4-11 there. Measured on the central crop of at most
    NOISE_CROP pixels a side."""
    h, w = pixels.shape[:2]
    y, x = max(0, (h - NOISE_CROP) // 2), max(0, (w - NOISE_CROP) // 2)
    img = pixels[y : y + NOISE_CROP, x : x + NOISE_CROP].astype(np.float64)
    if pixels.dtype == np.uint16:
        img = img / 257.0
    img = img[..., None] if img.ndim == 2 else img
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    if h < 2 or w < 2:
        return 0.0
    a, b, c, d = img[0:h:2, 0:w:2], img[0:h:2, 1:w:2], img[1:h:2, 0:w:2], img[1:h:2, 1:w:2]
    diagonal = (a - b - c + d) / 2  # HH: for white noise of sigma, itself white of sigma
    detail = (np.abs(a + b - c - d) + np.abs(a - b + c - d)) / 2  # |LH| + |HL|: edges and texture
    n = 8 if min(diagonal.shape[:2]) >= 8 else min(diagonal.shape[:2])
    bh, bw = diagonal.shape[0] // n, diagonal.shape[1] // n

    def blocks(t: np.ndarray) -> np.ndarray:  # (blocks, n * n, channels)
        t = t[: bh * n, : bw * n].reshape(bh, n, bw, n, -1)
        return t.transpose(0, 2, 1, 3, 4).reshape(bh * bw, n * n, -1)

    hh, energy = blocks(diagonal), blocks(detail).mean(axis=(1, 2))
    flat = np.argsort(energy, kind="stable")[: max(4, round(0.1 * len(energy)))]
    return float((np.median(np.abs(hh[flat]), axis=(0, 1)) / 0.6745).mean())
