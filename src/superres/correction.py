"""The original report's correction: where the model's output strays far from a safe reference
(the bilinear upscaling of the LR image), take the reference value instead.

The report looped over pixels in Python; here it is one vectorised comparison.
"""

from __future__ import annotations

import numpy as np

from superres.errors import ConfigError
from superres.resize import imresize

# Chosen by benchmarks/correction_sweep.py on 10 held-out training images (never the benchmark sets): the
# smallest threshold that costs the bundled x2 model at most 0.1 dB (it costs 0.04 dB there; see README).
DEFAULT_THRESHOLD = 80.0


def correct(sr: np.ndarray, reference: np.ndarray | None = None, threshold: float = DEFAULT_THRESHOLD,
            *, lr: np.ndarray | None = None) -> np.ndarray:
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
