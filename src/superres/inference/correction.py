"""The original report's correction: where the model's output strays far from a safe reference
(the bilinear upscaling of the LR image), take the reference value instead.

The report looped over pixels in Python; here it is one vectorised comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from superres.errors import ConfigError
from superres.imaging.resize import imresize

# Chosen by benchmarks/correction_sweep.py on 10 held-out training images (never the benchmark sets): the
# smallest threshold that costs the bundled x2 model at most 0.1 dB (it costs 0.04 dB there; see README).
DEFAULT_THRESHOLD = 80.0


def correct(
    sr: np.ndarray,
    reference: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    lr: np.ndarray | None = None,
) -> np.ndarray:
    """Per pixel and channel, where |sr - reference| > threshold (8-bit gray levels), take the reference.

    sr: uint8 or uint16 (H, W[, C]) model output. reference: the same shape and type; if None it is the
    MATLAB bilinear upscaling of `lr`. For 16-bit images the threshold is scaled by 257.
    """
    sr = np.asarray(sr)
    if reference is None:
        if lr is None:
            raise ConfigError("correct() needs a reference image or the LR image to make one from")
        lr = np.asarray(lr)
        reference = imresize(lr, output_shape=sr.shape[:2], method="bilinear")
    reference = np.asarray(reference)
    if reference.shape != sr.shape:
        raise ConfigError(f"reference shape {reference.shape} differs from the output's {sr.shape}")
    if threshold < 0:
        raise ConfigError(f"threshold must be >= 0, got {threshold}")
    tau = threshold * (257.0 if sr.dtype == np.uint16 else 1.0)
    reference = reference.astype(sr.dtype, copy=False)
    diff = np.maximum(sr, reference)  # |sr - reference| without leaving the unsigned type
    np.subtract(diff, np.minimum(sr, reference), out=diff)
    out = sr.copy()
    if np.issubdtype(sr.dtype, np.integer):  # diff > tau  <=>  diff > floor(tau), compared in the image's type
        limit = np.iinfo(sr.dtype).max
        if tau >= limit:
            return out
        tau = sr.dtype.type(int(tau))
    np.copyto(out, reference, where=diff > tau)
    return out


def correct_strips(
    strips: Iterable[np.ndarray], lr: np.ndarray, scale: int, threshold: float = DEFAULT_THRESHOLD
) -> Iterator[np.ndarray]:
    """correct(..., lr=lr) on an output that comes in strips of rows, top to bottom.

    Each strip's bilinear reference is made from the LR rows under it plus two on each side, more than
    the bilinear kernel reaches, so the result equals correcting the whole output at once."""
    lr = np.asarray(lr)
    row = 0
    for strip in strips:
        n = len(strip)
        y0, y1 = max(0, row // scale - 2), min(lr.shape[0], -(-(row + n) // scale) + 2)
        reference = imresize(lr[y0:y1], output_shape=((y1 - y0) * scale, strip.shape[1]), method="bilinear")
        offset = row - y0 * scale
        yield correct(strip, reference[offset : offset + n], threshold)
        row += n
