"""Image sets on disk: (LR, HR) pairs for training and evaluation.

Layouts: the EDSR benchmark layout (HR/ + LR_bicubic/X<s>/<stem>x<s>.png), DIV2K's
(DIV2K_train_HR/ + DIV2K_train_LR_bicubic/X<s>/...), or a plain folder of HR images whose LR images
are made with the MATLAB bicubic. Training keeps every (LR, HR) pair in memory, made once per run;
training/patches.py cuts them into patches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

from superres.errors import ConfigError, Hint
from superres.imaging.color import rgb_to_y
from superres.imaging.io import READ_SUFFIXES, read_image
from superres.imaging.resize import imresize

log = logging.getLogger(__name__)

Scale = TypeVar("Scale", bound=float)  # int at fixed scales, float at any factor


# ---------------------------------------------------------------------------------------------- image sets


@dataclass(frozen=True)
class Dataset:
    """A folder of HR images and, where present, ready MATLAB-bicubic LR images."""

    name: str
    hr_dir: Path
    lr_root: Path | None  # holds X2/, X3/, X4/ with <stem>x<s>.png; None: LR made with imresize

    def hr_paths(self) -> list[Path]:
        return list_images(self.hr_dir)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in READ_SUFFIXES)


def find_dataset(path: str | Path, split: str = "valid") -> Dataset:
    """Recognise the EDSR benchmark layout (HR/ + LR_bicubic/), DIV2K's (X_HR/ + X_LR_bicubic/) or a plain folder.

    Where a DIV2K-style folder holds several *_HR folders (DIV2K_train_HR, DIV2K_valid_HR), `split`
    ('valid' for evaluation, 'train' for training) chooses the one whose name contains it.
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    if (root / "HR").is_dir():
        return Dataset(root.name, root / "HR", root / "LR_bicubic" if (root / "LR_bicubic").is_dir() else None)
    candidates = [d for d in sorted(root.glob("*_HR")) if d.is_dir()]
    if len(candidates) > 1:
        chosen = [d for d in candidates if split in d.name.lower()]
        if len(chosen) != 1:
            raise ConfigError(
                f"{root}: holds {', '.join(d.name for d in candidates)}",
                hint=Hint("data", "point {} at one of them", "the data folder"),
            )
        candidates = chosen
    if candidates:
        hr_dir = candidates[0]
        lr_root = root / (hr_dir.name[:-3] + "_LR_bicubic")
        return Dataset(root.name, hr_dir, lr_root if lr_root.is_dir() else None)
    return Dataset(root.name, root, None)


@dataclass
class Sample:
    name: str
    lr: np.ndarray  # (h, w[, C])
    hr: np.ndarray  # (h*s, w*s[, C]), cropped from the top left to LR size x scale
    condition: tuple[float, float] | None = None  # a degraded LR's damage (imaging.degrade.condition), if known


def to_colors(pixels: np.ndarray, n_colors: int | None) -> np.ndarray:
    """uint8 pixels with n_colors channels: 3 -> (H, W, 3) RGB, 1 -> (H, W, 1) BT.601 Y, None -> unchanged."""
    if n_colors is None:
        return pixels
    if pixels.dtype == np.uint16:
        pixels = np.floor(pixels / 257.0 + 0.5).astype(np.uint8)
    if n_colors == 3:
        return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    y = pixels if pixels.ndim == 2 else np.clip(np.floor(rgb_to_y(pixels) + 0.5), 0, 255).astype(np.uint8)
    return y[..., None]


def as_fraction(scale: float) -> Fraction:
    """A factor as a fraction (2.5 -> 5/2); denominators up to 64."""
    return Fraction(scale).limit_denominator(64)


def bicubic_lr(hr: np.ndarray, scale: float) -> np.ndarray:
    """The LR image as the benchmarks make it: HR cropped to a multiple of the scale's numerator (the scale
    itself when it is an integer; 3 for 1.5 = 3/2), then MATLAB bicubic by 1/scale, so LR x scale is
    exactly the cropped HR."""
    n = as_fraction(scale).numerator
    return imresize(hr[: hr.shape[0] // n * n, : hr.shape[1] // n * n], 1 / scale)


def make_sample(name: str, hr: np.ndarray, scale: float, lr: np.ndarray | None = None) -> Sample:
    """Pair HR with its LR (bicubic_lr of the HR when not given)."""
    if lr is None:
        lr = bicubic_lr(hr, scale)
    size = tuple(round(n * scale) for n in lr.shape[:2])
    hr = hr[: size[0], : size[1]]
    if hr.shape[:2] != size or any(abs(n * scale - m) > 1e-6 for n, m in zip(lr.shape[:2], size, strict=True)):
        raise ConfigError(
            f"{name}: HR {hr.shape[1]}x{hr.shape[0]} does not match LR {lr.shape[1]}x{lr.shape[0]} x{scale:g}"
        )
    if hr.ndim != lr.ndim:
        raise ConfigError(f"{name}: HR and LR differ in channels")
    if hr.dtype != lr.dtype:
        raise ConfigError(f"{name}: HR is {hr.dtype} but LR is {lr.dtype}; both must have the same bit depth")
    return Sample(name, lr, hr)


def load_samples(
    dataset: Dataset, scale: float, n_colors: int | None = None, paths: list[Path] | None = None
) -> Iterator[Sample]:
    """(LR, HR) pairs of a dataset (or of the given HR paths in it) at any factor; ready LR files
    (integer factors) are used when present."""
    for by_scale in _pairs(dataset, (scale,), n_colors, paths):
        yield by_scale[scale]


def load_samples_at(
    dataset: Dataset, scales: list[int], n_colors: int | None = None, paths: list[Path] | None = None
) -> dict[int, list[Sample]]:
    """load_samples at several scales, each HR image read once: every scale's HR is a view of it."""
    out: dict[int, list[Sample]] = {s: [] for s in scales}
    for by_scale in _pairs(dataset, tuple(scales), n_colors, paths):
        for s, sample in by_scale.items():
            out[s].append(sample)
    return out


def _pairs(
    dataset: Dataset, scales: tuple[Scale, ...], n_colors: int | None, paths: list[Path] | None
) -> Iterator[dict[Scale, Sample]]:
    paths = dataset.hr_paths() if paths is None else paths
    if not paths:
        raise ConfigError(f"{dataset.hr_dir}: no images")
    for hr_path in paths:
        hr = to_colors(read_image(hr_path).pixels, n_colors)
        pairs = {}
        for scale in scales:
            lr_path = None
            if dataset.lr_root is not None and scale == int(scale):  # ready LR files: integer factors only
                lr_path = dataset.lr_root / f"X{int(scale)}" / f"{hr_path.stem}x{int(scale)}.png"
            lr = to_colors(read_image(lr_path).pixels, n_colors) if lr_path is not None and lr_path.is_file() else None
            pairs[scale] = make_sample(hr_path.stem, hr, scale, lr)
        yield pairs
