"""Training data: HR images from folders, their MATLAB-bicubic LR versions, random aligned patches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superres.resize import imresize

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass
class Pair:
    name: str
    lr: np.ndarray  # uint8 (h, w, 3)
    hr: np.ndarray  # uint8 (h*s, w*s, 3)


def make_pair(name: str, hr: np.ndarray, scale: int) -> Pair:
    """Crop HR to a multiple of the scale and shrink it with the MATLAB bicubic."""
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    return Pair(name, imresize(hr, 1 / scale, method="bicubic"), hr)


def load_pairs(paths: list[Path], scale: int, n_colors: int = 3) -> list[Pair]:
    from superres.imageio import read_rgb  # noqa: PLC0415

    return [make_pair(p.stem, read_rgb(p, n_colors), scale) for p in paths]


class PatchSampler:
    """Random aligned LR/HR patch batches with the 8 flips/rotations, from an in-memory list of pairs.

    The random state is a numpy Generator whose state can be saved and restored (resumable runs).
    """

    def __init__(self, pairs: list[Pair], scale: int, patch_size: int, batch_size: int,
                 augment: bool = True, seed: int = 0) -> None:
        self.pairs = [p for p in pairs if min(p.lr.shape[:2]) >= patch_size]
        for p in pairs:
            if min(p.lr.shape[:2]) < patch_size:
                log.warning("skipping %s: LR %dx%d is smaller than a %d px patch", p.name, p.lr.shape[1], p.lr.shape[0], patch_size)
        if not self.pairs:
            raise ValueError(f"no training image is large enough for {patch_size} px LR patches at x{scale}")
        self.scale, self.patch_size, self.batch_size, self.augment = scale, patch_size, batch_size, augment
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) uint8 arrays of shape (N, p, p, C) and (N, p*s, p*s, C)."""
        p, s = self.patch_size, self.scale
        lrs, hrs = [], []
        for i in self.rng.integers(len(self.pairs), size=self.batch_size):
            pair = self.pairs[i]
            y = int(self.rng.integers(pair.lr.shape[0] - p + 1))
            x = int(self.rng.integers(pair.lr.shape[1] - p + 1))
            lr = pair.lr[y:y + p, x:x + p]
            hr = pair.hr[y * s:(y + p) * s, x * s:(x + p) * s]
            if self.augment:
                k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
                lr, hr = np.rot90(lr, k), np.rot90(hr, k)
                if flip:
                    lr, hr = lr[:, ::-1], hr[:, ::-1]
            lrs.append(lr)
            hrs.append(hr)
        return np.stack(lrs), np.stack(hrs)
