"""How damaged a picture is, read from its pixels: the JPEG quality it was saved at and the level of its noise,
as the condition (jpeg, noise) each 0..1 that the photo model takes (imaging.degrade.condition).

A tiny CNN (`DamageNet`, 67K parameters) looks at 64x64 crops taken on the 8-pixel JPEG grid and answers for
each; the picture's damage is the median over up to CROPS crops spread over it. It was trained on the training
images degraded by the `files` mixture (training/damage.py), so it knows PNGs that were JPEGs once, camera noise
correlated across colours and neighbours, and tells texture from noise better than a hand-made measure: the
held-out errors are in docs/photos.md. Where the file is a JPEG, its quantisation tables tell the quality
exactly (imaging.quality); the network then only answers for the noise.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch
from torch import nn

from superres.imaging.degrade import condition

CROP = 64  # the side of a crop the network reads (a multiple of 8: crops start on the JPEG grid)
CROPS = 16  # at most this many crops per picture
WEIGHTS = "damage.safetensors"  # in superres/weights


class DamageNet(nn.Module):
    """(N, 3, 64, 64) RGB in 0..1 -> (N, 2) damage (jpeg, noise), each 0..1. Three stride-2 convolutions bring
    the crop to one cell per 8x8 JPEG block; the cells are averaged and a small MLP answers."""

    def __init__(self, width: int = 32) -> None:
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
        self.head = nn.Sequential(nn.Linear(2 * w, 2 * w), nn.ReLU(), nn.Linear(2 * w, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.features(x - 0.5).mean(dim=(2, 3))))


@functools.cache
def bundled_damage_net() -> DamageNet | None:
    """The bundled estimator (fp32, CPU, eval mode), or None where the package has no weights file for it."""
    from safetensors.torch import load_file

    path = resources.files("superres.weights").joinpath(WEIGHTS)
    if not path.is_file():
        return None
    net = DamageNet()
    net.load_state_dict(load_file(str(path)), strict=True)
    return net.eval()


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
def estimate_damage(
    pixels: np.ndarray, jpeg_quality: int | None = None, net: DamageNet | None = None
) -> tuple[float, float] | None:
    """The picture's (jpeg, noise) condition: the median of the network's answers over its crops, the jpeg
    part from the file's quality where it is a JPEG. None where no estimator is bundled (and none given)."""
    net = net if net is not None else bundled_damage_net()
    if net is None:
        return None
    batch = torch.from_numpy(crops(pixels)).permute(0, 3, 1, 2).float() / 255
    answers = net(batch).median(dim=0).values.tolist()
    jpeg = condition(jpeg_quality)[0] if jpeg_quality is not None else float(answers[0])
    return jpeg, float(answers[1])
