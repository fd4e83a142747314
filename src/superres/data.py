"""Image sets on disk and training patches.

Layouts: the EDSR benchmark layout (HR/ + LR_bicubic/X<s>/<stem>x<s>.png), DIV2K's
(DIV2K_train_HR/ + DIV2K_train_LR_bicubic/X<s>/...), or a plain folder of HR images whose LR images
are made with the MATLAB bicubic. Training keeps every (LR, HR) pair in memory, made once per run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from superres.errors import ConfigError
from superres.imageio import READ_SUFFIXES, read_image
from superres.color import rgb_to_y
from superres.resize import imresize

log = logging.getLogger(__name__)


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
            raise ConfigError(f"{root}: holds {', '.join(d.name for d in candidates)}; point --data at one of them")
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


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image as the benchmarks make it: HR cropped to a multiple of the scale, then MATLAB bicubic."""
    return imresize(hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale], 1 / scale)


def make_sample(name: str, hr: np.ndarray, scale: int, lr: np.ndarray | None = None) -> Sample:
    """Pair HR with its LR (bicubic_lr of the HR when not given)."""
    if lr is None:
        lr = bicubic_lr(hr, scale)
    hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
    if hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
        raise ConfigError(f"{name}: HR {hr.shape[1]}x{hr.shape[0]} is smaller than LR x{scale}")
    if hr.ndim != lr.ndim:
        raise ConfigError(f"{name}: HR and LR differ in channels")
    if hr.dtype != lr.dtype:
        raise ConfigError(f"{name}: HR is {hr.dtype} but LR is {lr.dtype}; both must have the same bit depth")
    return Sample(name, lr, hr)


def load_samples(dataset: Dataset, scale: int, n_colors: int | None = None,
                 paths: list[Path] | None = None) -> Iterator[Sample]:
    """(LR, HR) pairs of a dataset (or of the given HR paths in it); ready LR files are used when present."""
    paths = dataset.hr_paths() if paths is None else paths
    if not paths:
        raise ConfigError(f"{dataset.hr_dir}: no images")
    for hr_path in paths:
        hr = to_colors(read_image(hr_path).pixels, n_colors)
        lr_path = dataset.lr_root / f"X{scale}" / f"{hr_path.stem}x{scale}.png" if dataset.lr_root else None
        lr = to_colors(read_image(lr_path).pixels, n_colors) if lr_path is not None and lr_path.is_file() else None
        yield make_sample(hr_path.stem, hr, scale, lr)


# ---------------------------------------------------------------------------------------------- patches

class PatchSampler:
    """Random aligned LR/HR patch batches from in-memory samples, with the 8 flips/rotations and the
    original report's brightness change as options.

    Its whole random state is a numpy Generator whose state can be saved and restored (resumable runs).
    """

    def __init__(self, samples: list[Sample], scale: int, patch_size: int, batch_size: int,
                 flips: bool = True, brightness: float = 0.0, rgb_permute: float = 0.0, seed: int = 0) -> None:
        self.samples = [s for s in samples if min(s.lr.shape[:2]) >= patch_size]
        for s in samples:
            if min(s.lr.shape[:2]) < patch_size:
                log.warning("skipping %s: LR %dx%d is smaller than a %d px patch", s.name, s.lr.shape[1], s.lr.shape[0],
                            patch_size)
        if not self.samples:
            raise ConfigError(f"no training image is large enough for {patch_size} px LR patches at x{scale}")
        self.scale, self.patch_size, self.batch_size = scale, patch_size, batch_size
        self.flips, self.brightness, self.rgb_permute = flips, brightness, rgb_permute
        self.rng = np.random.default_rng(seed)

    @property
    def state(self) -> dict:
        return self.rng.bit_generator.state

    @state.setter
    def state(self, value: dict) -> None:
        self.rng.bit_generator.state = value

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) arrays (N, p, p, C) and (N, p*s, p*s, C): uint8, or float32 0-255 with brightness."""
        p, s = self.patch_size, self.scale
        lrs, hrs = [], []
        for i in self.rng.integers(len(self.samples), size=self.batch_size):
            sample = self.samples[i]
            y = int(self.rng.integers(sample.lr.shape[0] - p + 1))
            x = int(self.rng.integers(sample.lr.shape[1] - p + 1))
            lr = sample.lr[y:y + p, x:x + p]
            hr = sample.hr[y * s:(y + p) * s, x * s:(x + p) * s]
            if self.flips:
                k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
                lr, hr = np.rot90(lr, k), np.rot90(hr, k)
                if flip:
                    lr, hr = lr[:, ::-1], hr[:, ::-1]
            if self.rgb_permute and lr.shape[2] == 3 and self.rng.random() < self.rgb_permute:
                order = self.rng.permutation(3)
                lr, hr = lr[..., order], hr[..., order]
            lrs.append(lr)
            hrs.append(hr)
        lr_batch, hr_batch = np.stack(lrs), np.stack(hrs)
        if self.brightness > 0:  # one factor per patch, the same for LR and HR
            f = self.rng.uniform(1 - self.brightness, 1 + self.brightness, size=(self.batch_size, 1, 1, 1))
            lr_batch = np.clip(lr_batch * f, 0, 255).astype(np.float32)
            hr_batch = np.clip(hr_batch * f, 0, 255).astype(np.float32)
        return lr_batch, hr_batch


class MultiScaleSampler:
    """Batches for several scales: each batch is drawn at one scale, chosen at random (uniformly), from that
    scale's PatchSampler. LR patches have the same size at every scale (MDSR's recipe)."""

    def __init__(self, samplers: dict[int, PatchSampler], seed: int = 0) -> None:
        self.samplers = samplers
        self.scales = sorted(samplers)
        self.rng = np.random.default_rng(seed)

    @property
    def state(self) -> dict:
        return {"choice": self.rng.bit_generator.state,
                "scales": {str(s): sampler.state for s, sampler in self.samplers.items()}}

    @state.setter
    def state(self, value: dict) -> None:
        if sorted(int(s) for s in value["scales"]) != self.scales:
            raise ConfigError(f"sampler state is for x{', x'.join(value['scales'])}, not these scales")
        self.rng.bit_generator.state = value["choice"]
        for s, sampler_state in value["scales"].items():
            self.samplers[int(s)].state = sampler_state

    def sample(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(scale, lr, hr) with lr (N, p, p, C) and hr (N, p*scale, p*scale, C)."""
        scale = self.scales[int(self.rng.integers(len(self.scales)))]
        return (scale, *self.samplers[scale].sample())
