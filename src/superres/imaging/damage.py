"""How damaged a picture is, read from its pixels: the JPEG quality it was saved at and the level of its noise,
as the condition (jpeg, noise) each 0..1 that the photo model takes (imaging.degrade.condition).

- **JPEG quality**: a JPEG file's quantisation tables tell it exactly (imaging.quality). For anything else (a
  PNG that was a JPEG once, a screenshot, a frame of video) a tiny CNN (`DamageNet`, 70K parameters) reads up
  to CROPS crops of 64x64 taken on the 8-pixel JPEG grid, and the median of its answers is the estimate. It was
  trained on the training images degraded by the `files` mixture (training/damage.py). Its reading less
  JPEG_FLOOR is the estimate.
- **Real-ESRGAN's chain** (`--denoise auto+chain` only): a second tiny CNN of the same shape
  (`chain.safetensors`, one output) reads the chance that the picture went through that chain (blur, resize,
  noise and JPEG, twice); at CHAIN_AT or above the picture is told (1, 1), the strongest damage, as the chain
  was in the photo model's training. Not part of plain auto: it reads a stained-tissue micrograph as the
  chain at any useful cut-off (docs/photos.md).
- **Noise**: the hand-made measure of imaging.quality (`noise_sigma`: Donoho's estimate on the flattest tenth of
  the picture), less NOISE_FLOOR, the level it reads on clean pictures (texture), in quadrature: texture and
  noise add as independent variances, sqrt(reading^2 - floor^2). The CNN's own noise answer
  is not used: trained with the JPEG answer (L1, sigmoid outputs) it learned to answer 0 for every picture, and
  retrained with a squared error it was worse than the hand-made measure on every kind but `real` (the
  errors of each are in docs/photos.md).
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from superres.imaging.degrade import condition
from superres.imaging.quality import noise_sigma

CROP = 64  # the side of a crop the network reads (a multiple of 8: crops start on the JPEG grid)
CROPS = 16  # at most this many crops per picture
# what each reading gives on clean pictures (the 12 held-out training images' clean LR at x2), taken off it, so that
# a clean PNG reads (0, 0) and runs the clean model: texture for the noise measure, fine detail for the network
NOISE_FLOOR = 1.35  # noise_sigma's mean reading there (gray levels)
JPEG_FLOOR = 0.088  # the network's mean jpeg answer there (quality ~94)
# below these (after the floors), a reading from pixels counts as none: the 95th percentiles of the readings on all
# 491 training images' clean LR at x2 (`python -m superres.training.damage --clean-readings`), so that at least 95%
# of clean pictures run the clean model (the photo model at a small damage smooths what a clean picture has)
JPEG_CLEAN_BELOW, NOISE_CLEAN_BELOW = 0.19, 0.186  # noise: 0.13 while the floor came off linearly
WEIGHTS = "damage.safetensors"  # in superres/weights
CHAIN_WEIGHTS = "chain.safetensors"  # the chain detector, in superres/weights
# a picture the chain detector reads at this median chance or above is told (1, 1): the lowest cut-off, in steps
# of 0.05, above every picture that did not go through the chain, on the held-out training images (every kind
# of training.damage and `soft` at x2-x4: at most 0.87) and in benchmarks/chain_safety.py (scikit-image's
# photos, scans and micrographs at full and half size, as PNG and four JPEG qualities: at most 0.942, a micrograph that
# the (1, 1) setting smooths into patches; its 128-pixel crops read 0.97-0.98, which is why auto does not use
# the detector); benchmarks/chain_cutoff.py shows lower cut-offs would catch more of the chain
CHAIN_AT = 0.95


class DamageNet(nn.Module):
    """(N, 3, 64, 64) RGB in 0..1 -> (N, outputs) answers, each 0..1: the damage (jpeg, noise) (only the jpeg
    answer is used), or with one output the chance that the crop went through Real-ESRGAN's chain. Three
    stride-2 convolutions bring the crop to one cell per 8x8 JPEG block; the cells are averaged and a small MLP
    answers."""

    def __init__(self, width: int = 32, outputs: int = 2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(2 * w, 2 * w), nn.ReLU(), nn.Linear(2 * w, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.features(x - 0.5).mean(dim=(2, 3))))


@functools.cache
def _bundled(name: str, outputs: int) -> DamageNet | None:
    from safetensors.torch import load_file

    path = resources.files("superres.weights").joinpath(name)
    if not path.is_file():
        return None
    net = DamageNet(outputs=outputs)
    net.load_state_dict(load_file(str(path)), strict=True)
    return net.eval()


def bundled_damage_net() -> DamageNet | None:
    """The bundled estimator (fp32, CPU, eval mode), or None where the package has no weights file for it."""
    return _bundled(WEIGHTS, 2)


def bundled_chain_net() -> DamageNet | None:
    """The bundled chain detector (one output), or None where the package has no weights file for it."""
    return _bundled(CHAIN_WEIGHTS, 1)


def crops(pixels: np.ndarray, n: int = CROPS) -> np.ndarray:
    """Up to n CROP x CROP crops (n, CROP, CROP, 3) uint8 on the 8-pixel grid, spread evenly over the picture
    (one grid of rows and columns); a picture smaller than a crop is padded by reflection to one crop."""
    img = pixels[..., None] if pixels.ndim == 2 else pixels
    img = np.repeat(img[..., :1], 3, axis=2) if img.shape[2] == 1 else img[..., :3]
    if img.dtype == np.uint16:
        img = np.floor(img / 257.0 + 0.5).astype(np.uint8)
    h, w = img.shape[:2]
    if h < CROP or w < CROP:
        img = np.pad(img, ((0, max(0, CROP - h)), (0, max(0, CROP - w)), (0, 0)), mode="symmetric")
        h, w = img.shape[:2]
    side = max(1, int(np.sqrt(n)))
    ys = sorted({(int(v) // 8) * 8 for v in np.linspace(0, h - CROP, side)})
    xs = sorted({(int(v) // 8) * 8 for v in np.linspace(0, w - CROP, side)})
    return np.stack([img[y : y + CROP, x : x + CROP] for y in ys for x in xs])


@torch.inference_mode()
def median_answer(pixels: np.ndarray, net: DamageNet) -> float:
    """The median over the picture's crops of the network's first answer."""
    batch = torch.from_numpy(crops(pixels)).permute(0, 3, 1, 2).float() / 255
    return float(net(batch)[:, 0].median())


def chain_chance(pixels: np.ndarray, net: DamageNet | None = None) -> float | None:
    """The chain detector's median chance over the crops that the picture went through Real-ESRGAN's chain;
    None where no detector is bundled (and none given), and for a picture smaller than a crop either way (one
    padded crop is too little to tell the chain by)."""
    if min(pixels.shape[:2]) < CROP:
        return None
    net = net if net is not None else bundled_chain_net()
    return None if net is None else median_answer(pixels, net)


def estimate_jpeg(pixels: np.ndarray, net: DamageNet | None = None) -> float | None:
    """The jpeg part of the damage read from the pixels: the median of the network's answers over the crops.
    None where no estimator is bundled (and none given)."""
    net = net if net is not None else bundled_damage_net()
    return None if net is None else median_answer(pixels, net)


def pixel_readings(pixels: np.ndarray, net: DamageNet | None = None) -> tuple[float, float, float]:
    """(jpeg, noise, sigma) read from the pixels, each damage with its clean-picture floor taken off (before
    the cut-offs), and the noise level the hand-made measure read (gray levels). jpeg is 0 without an
    estimator."""
    jpeg = max(0.0, (estimate_jpeg(pixels, net) or 0.0) - JPEG_FLOOR)
    sigma = noise_sigma(pixels)
    return jpeg, noise_damage(sigma), sigma


def noise_damage(sigma: float) -> float:
    """The noise part of the damage for a hand-made noise reading `sigma` (gray levels): less NOISE_FLOOR in
    quadrature (texture and noise add as variances), as a condition (before the cut-off)."""
    return condition(None, math.sqrt(max(0.0, sigma * sigma - NOISE_FLOOR * NOISE_FLOOR)))[1]


class Damage(NamedTuple):
    """What auto reads off a picture: the damage (jpeg, noise) it tells the photo model, the noise level the
    hand-made measure read (gray levels, before the floor), and the chain detector's chance where it ran."""

    jpeg: float
    noise: float
    sigma: float
    chain: float | None = None

    @property
    def is_chain(self) -> bool:
        """The chain detector ran and read Real-ESRGAN's chain (the damage is then (1, 1))."""
        return reads_as_chain(self.chain)


def reads_as_chain(chance: float | None) -> bool:
    """A chain detector's chance (None: it did not run) that counts as Real-ESRGAN's chain."""
    return chance is not None and chance >= CHAIN_AT


def estimate_damage(
    pixels: np.ndarray,
    jpeg_quality: int | None = None,
    net: DamageNet | None = None,
    chain_net: DamageNet | None = None,
    chain: bool = False,
) -> Damage:
    """The picture's damage. jpeg: from the file's quality where it is a JPEG, else from the pixels; a reading
    from pixels below its CLEAN_BELOW counts as 0. With `chain` (--denoise auto+chain), a picture the chain
    detector (`chain_net` or the bundled one) reads at CHAIN_AT or above is told (1, 1), as Real-ESRGAN's chain
    was in training, whatever the tables or the other readings say."""
    chance = chain_chance(pixels, chain_net) if chain else None
    if reads_as_chain(chance):  # the other readings would go unused: only the noise level is read
        return Damage(1.0, 1.0, noise_sigma(pixels), chance)
    if jpeg_quality is not None:  # the tables are exact: the network is not run
        jpeg = condition(jpeg_quality)[0]
        sigma = noise_sigma(pixels)
        noise = noise_damage(sigma)
    else:
        jpeg, noise, sigma = pixel_readings(pixels, net)
        jpeg = jpeg if jpeg >= JPEG_CLEAN_BELOW else 0.0
    return Damage(jpeg, noise if noise >= NOISE_CLEAN_BELOW else 0.0, sigma, chance)
