"""Degradations: how a clean HR image becomes the low-resolution image a real photo is.

Operations (each takes and returns uint8 (H, W, C) pixels): blur by a kernel (isotropic and anisotropic
Gaussian, generalized Gaussian, plateau, sinc), resize (area, bilinear, bicubic), noise (Gaussian in
colour or gray, Poisson) and JPEG (libjpeg through Pillow). They are chained as named presets:

    bicubic (or clean)   the MATLAB bicubic shrink, as the benchmarks
    jpeg:Q               the shrink, then saved as JPEG of quality Q
    noise:SIGMA          the shrink, then Gaussian colour noise of SIGMA gray levels
    blur:SIGMA           a Gaussian blur of SIGMA HR pixels, then the shrink
    blur:1+noise:5+jpeg:70   several: blurs before the shrink, the rest after it, in the order given
    real                 Real-ESRGAN's second-order random chain, with its published ranges
    photo                what mdsr-medium-photo trained on: half `real`, half the shrink followed at random
                         by Gaussian noise and/or JPEG
    web                  what a picture on the web carries: maybe a camera's JPEG at full size, a resize
                         (MATLAB bicubic, area, bilinear or bicubic), then a JPEG of quality 30-95, 4:2:0
    camera               a phone's picture: a mild demosaic-like blur, the resize, Poisson-Gaussian noise
                         correlated across colours and neighbours, maybe the phone's JPEG (75-95)
    lens                 mild defocus (a disk) or motion blur (a line) before the resize, maybe a JPEG (80-95)
    soft                 a camera-resolution picture: the resize, a 0.5-1.5 px blur, maybe mild camera noise,
                         maybe a JPEG (30-95); not in `files` (the chain detector's negatives)
    grain                a noisy picture made smaller: the shrink, then white Gaussian noise (sigma 1-20),
                         maybe a JPEG (75-95)
    files                what people's files carry: the mixture FILES_MIX of clean, web, camera, grain,
                         lens, real
    mix:clean=0.2,web=0.8   a mixture of named presets with weights (they are normalised)

Each draw also says what it did as a condition (jpeg, noise), each 0..1 (`condition`): the damage that the
conditioned photo model is told about and that `--denoise auto` estimates.

Every random choice comes from the numpy Generator passed in; `image_rng(seed, pixels)` makes one from a
seed and the image, so a degraded set is the same on every run. The arithmetic is exact: images are
integers after every step, kernels are quantised to multiples of 2^-16 and applied in integer
arithmetic, and resizing is `imresize` (taps summed in order), so the result does not depend on the
CPU's vector unit or the order of a floating-point sum.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from superres.errors import ConfigError
from superres.imaging.resize import imresize

KERNEL_ONE = 1 << 16  # kernels are integers that sum to this
RESIZE_MODES = ("area", "bilinear", "bicubic")


JPEG_ONE, NOISE_ONE = 30, 20.0  # the JPEG quality and noise sigma (gray levels) a condition of 1 stands for


class Degraded(NamedTuple):
    """A degraded image: uint8 (H, W, C) pixels, the JPEG file they decode from when the last step was a
    JPEG save (None otherwise), so that a caller can store or inspect the real file, and the damage as a
    condition (jpeg, noise), each 0..1 (see `condition`)."""

    pixels: np.ndarray
    jpeg: bytes | None = None
    condition: tuple[float, float] = (0.0, 0.0)


def condition(quality: float | None = None, sigma: float = 0.0) -> tuple[float, float]:
    """The damage as two numbers from 0 to 1: jpeg = (100 - quality) / (100 - JPEG_ONE) (0 without a JPEG) and
    noise = sigma / NOISE_ONE, each clipped. `--denoise S` stands for (S, S)."""
    j = 0.0 if quality is None else (100 - quality) / (100 - JPEG_ONE)
    return float(min(1.0, max(0.0, j))), float(min(1.0, max(0.0, sigma / NOISE_ONE)))


def image_rng(seed: int, pixels: np.ndarray) -> np.random.Generator:
    """A Generator that depends only on the seed and the image (its shape and pixel values)."""
    if int(seed) < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed}")
    digest = hashlib.sha256(str(pixels.shape).encode() + np.ascontiguousarray(pixels).tobytes()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


# ---------------------------------------------------------------------------------------------- kernels


def _grid(size: int) -> np.ndarray:
    """(size, size, 2) pixel offsets from the centre (size odd)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    return np.stack([xx, yy], axis=-1)


def gaussian_kernel(
    size: int,
    sigma_x: float,
    sigma_y: float | None = None,
    theta: float = 0.0,
    shape: str = "gaussian",
    beta: float = 1.0,
) -> np.ndarray:
    """A normalised (size, size) blur kernel on the quadratic form d = x^T S^-1 x with S the covariance of
    standard deviations (sigma_x, sigma_y) rotated by theta: 'gaussian' exp(-d/2), 'generalized'
    exp(-(d)^beta / 2), 'plateau' 1 / (1 + d^beta)."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    g = _grid(size)
    d = np.einsum("...i,ij,...j->...", g, np.linalg.inv(cov), g)
    if shape == "gaussian":
        k = np.exp(-0.5 * d)
    elif shape == "generalized":
        k = np.exp(-0.5 * np.power(d, beta))
    elif shape == "plateau":
        k = 1 / (np.power(d, beta) + 1)
    else:
        raise ConfigError(f"unknown kernel shape '{shape}'")
    return k / k.sum()


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """A normalised circular low-pass (2-D sinc, Airy) kernel with cutoff in radians per pixel (0 to pi):
    the ringing of sharpened and over-compressed images."""
    from scipy.special import j1

    r = np.hypot(*np.moveaxis(_grid(size), -1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * j1(cutoff * r) / (2 * np.pi * r)
    k[(size - 1) // 2, (size - 1) // 2] = cutoff**2 / (4 * np.pi)
    return k / k.sum()


def _supersampled(size: int, inside) -> np.ndarray:
    """A normalised (size, size) kernel whose taps are the share of each pixel's 8x8 sub-pixel points that
    `inside(x, y)` holds (offsets from the centre), so that a small disk or line has soft, area-true edges."""
    fine = (np.arange(size * 8) + 0.5) / 8 - size / 2  # sub-pixel centres across the kernel
    x, y = np.meshgrid(fine, fine)
    k = inside(x, y).astype(np.float64).reshape(size, 8, size, 8).mean(axis=(1, 3))
    return k / k.sum()


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus: a uniform disk of the radius (pixels), anti-aliased."""
    size = 2 * math.ceil(radius) + 1
    return _supersampled(size, lambda x, y: x * x + y * y <= radius * radius)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Camera shake: a line of the length (pixels) at the angle (radians), half a pixel thick, anti-aliased."""
    size = 2 * math.ceil(length / 2) + 1
    c, s = math.cos(angle), math.sin(angle)

    def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        along, across = x * c + y * s, -x * s + y * c
        return (np.abs(along) <= length / 2) & (np.abs(across) <= 0.25)

    return _supersampled(size, inside)


def quantize_kernel(kernel: np.ndarray) -> np.ndarray:
    """The kernel as int64 multiples of 1 / KERNEL_ONE summing to exactly KERNEL_ONE (the rounding error goes
    to the centre tap)."""
    q = np.rint(np.asarray(kernel, dtype=np.float64) * KERNEL_ONE).astype(np.int64)
    q[q.shape[0] // 2, q.shape[1] // 2] += KERNEL_ONE - int(q.sum())
    return q


def blur(pixels: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) pixels filtered by a centred odd-sized kernel, mirrored borders (reflect-101).

    Exact: the kernel is quantised, OpenCV sums integer products in float64 (any error is far below 0.5,
    so rounding recovers the exact integer sum), and the sum is divided with rounding in integers."""
    q = quantize_kernel(kernel)
    pad = q.shape[0] // 2
    src = pixels.astype(np.float64)
    if pad >= min(src.shape[:2]):  # reflect-101 needs the image wider than the kernel's radius
        src = np.pad(src, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")  # reflect-101, as OpenCV's
        return blur(src.astype(np.uint8), kernel)[pad:-pad, pad:-pad]
    sums = cv2.filter2D(src, -1, q.astype(np.float64), borderType=cv2.BORDER_REFLECT_101)
    sums = np.rint(sums).astype(np.int64).reshape(pixels.shape)
    out = (sums + KERNEL_ONE // 2) >> 16  # round half up
    return np.clip(out, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- other steps


def resize(pixels: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
    """uint8 pixels resized to (height, width): 'area' (box average when shrinking, nearest when enlarging),
    'bilinear' and 'bicubic' (no antialiasing, as a plain interpolation library does)."""
    if tuple(shape) == pixels.shape[:2]:
        return pixels
    method, aa = {"area": ("nearest", True), "bilinear": ("bilinear", False), "bicubic": ("bicubic", False)}[mode]
    return imresize(pixels, output_shape=shape, method=method, antialiasing=aa)


def add_gaussian_noise(pixels: np.ndarray, rng: np.random.Generator, sigma: float, gray: bool = False) -> np.ndarray:
    """Gaussian noise of standard deviation sigma gray levels; gray: the same noise in every channel."""
    h, w, c = pixels.shape
    noise = rng.standard_normal((h, w, 1) if gray else (h, w, c)) * sigma
    return np.clip(np.rint(pixels + noise), 0, 255).astype(np.uint8)


def add_poisson_noise(pixels: np.ndarray, rng: np.random.Generator, scale: float, gray: bool = False) -> np.ndarray:
    """Shot noise as in BasicSR: Poisson counts at 2^ceil(log2(distinct levels)) levels, times `scale`."""
    values = pixels
    if gray and pixels.shape[2] == 3:
        # The one float step of the chain: where the luma lands exactly on .5, another CPU's BLAS may round it
        # the other way, and the Poisson sampler's use of random numbers then shifts the rest of the chain.
        # Integer luma would fix it but would change every published `real` set; kept until they are remade.
        y = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        values = np.clip(np.rint(y), 0, 255).astype(np.uint8)[..., None]
    distinct = int(np.count_nonzero(np.bincount(values.ravel(), minlength=256)))
    levels = 2 ** math.ceil(math.log2(max(2, distinct)))
    img = values / 255
    noise = rng.poisson(img * levels) / levels - img
    return np.clip(np.rint(pixels + noise * scale * 255), 0, 255).astype(np.uint8)


def add_camera_noise(
    pixels: np.ndarray, rng: np.random.Generator, sigma: float, shot: float, colour: float, spread: float
) -> np.ndarray:
    """A camera's noise, of mean standard deviation `sigma` gray levels over the picture: Poisson-Gaussian (its
    variance a + b * level, the share `shot` of it from the signal-dependent part at the mean level),
    correlated across colours (`colour`: the share of the variance common to the three channels, as after a
    camera's colour matrix) and across neighbours (a 3x3 Gaussian of width `spread` pixels applied to the
    noise field and renormalised, as after demosaicing). The field is float64 and summed in a fixed order, so
    the result does not depend on the CPU."""
    h, w, c = pixels.shape
    field = rng.standard_normal((h, w, c))
    if c > 1:
        field = math.sqrt(colour) * rng.standard_normal((h, w, 1)) + math.sqrt(1 - colour) * field
    if spread > 0:
        edge = math.exp(-0.5 / spread**2)
        norm = math.sqrt(1 + 2 * edge**2)  # the 3x3 kernel's squared taps then sum to 1: unit variance kept
        taps = [edge / norm, 1 / norm, edge / norm]
        padded = np.pad(field, ((1, 1), (1, 1), (0, 0)), mode="reflect")
        rows = taps[0] * padded[:-2] + taps[1] * padded[1:-1] + taps[2] * padded[2:]
        field = taps[0] * rows[:, :-2] + taps[1] * rows[:, 1:-1] + taps[2] * rows[:, 2:]
    level = pixels.astype(np.float64)
    mean = max(1.0, int(pixels.sum(dtype=np.int64)) / pixels.size)
    variance = sigma**2 * ((1 - shot) + shot * level / mean)  # averages sigma^2 over the picture
    return np.clip(np.rint(level + field * np.sqrt(variance)), 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, quality: int) -> tuple[np.ndarray, bytes]:
    """(decoded pixels, the file): saved by libjpeg (Pillow) at quality 1-100, chroma subsampled 4:2:0 (as
    most encoders do)."""
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(
        buf, "JPEG", quality=int(quality), subsampling=2
    )
    data = buf.getvalue()
    decoded = np.array(Image.open(io.BytesIO(data)))
    return (decoded[..., None] if decoded.ndim == 2 else decoded), data


def shrink(pixels: np.ndarray, scale: float) -> np.ndarray:
    """The benchmark's LR: MATLAB bicubic by 1/scale (the HR is already a multiple of it)."""
    return pixels.copy() if scale == 1 else imresize(pixels, 1 / scale)


# ---------------------------------------------------------------------------------------------- the random chain


@dataclass(frozen=True)
class StageRanges:
    """The random ranges of one stage of Real-ESRGAN's chain (Wang et al., 2021; its x4 training options)."""

    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    # kernel shapes and their chances: iso, aniso, generalized iso/aniso, plateau iso/aniso
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_prob: float = 1.0
    sinc_prob: float = 0.1
    sigma: tuple[float, float] = (0.2, 3.0)
    beta_generalized: tuple[float, float] = (0.5, 4.0)
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_sigma: tuple[float, float] = (1.0, 30.0)
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_quality: tuple[float, float] = (30.0, 95.0)


@dataclass(frozen=True)
class RealChain:
    """Real-ESRGAN's second-order degradation: blur, resize, noise, JPEG; then again with milder ranges;
    then the resize to the LR size with a sinc filter, before or after the last JPEG (even chance)."""

    first: StageRanges = field(default_factory=StageRanges)
    second: StageRanges = field(
        default_factory=lambda: StageRanges(
            blur_prob=0.8,
            sigma=(0.2, 1.5),
            resize_probs=(0.3, 0.4, 0.3),
            resize_range=(0.3, 1.2),
            noise_sigma=(1.0, 25.0),
            poisson_scale=(0.05, 2.5),
        )
    )
    final_sinc_prob: float = 0.8

    def apply(self, hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
        h, w = hr.shape[0] / scale, hr.shape[1] / scale  # the LR size
        img = self._stage(hr, self.first, rng, hr.shape[:2])
        img = self._stage(img, self.second, rng, (h, w), jpeg_last=False)
        size = (round(h), round(w))
        mode = RESIZE_MODES[int(rng.integers(3))]
        sinc = None
        if rng.random() < self.final_sinc_prob:
            sinc = sinc_kernel(int(rng.choice(self.first.kernel_sizes)), rng.uniform(math.pi / 3, math.pi))
        quality = round(rng.uniform(*self.second.jpeg_quality))
        if rng.random() < 0.5:  # resize and sinc, then the last JPEG
            img = resize(img, size, mode)
            if sinc is not None:
                img = blur(img, sinc)
            return Degraded(*jpeg(img, quality))
        img, _ = jpeg(img, quality)
        img = resize(img, size, mode)
        return Degraded(img if sinc is None else blur(img, sinc))

    @staticmethod
    def _stage(
        img: np.ndarray, r: StageRanges, rng: np.random.Generator, base: tuple[float, float], jpeg_last: bool = True
    ) -> np.ndarray:
        """Blur, resize (relative to `base`, the stage's reference size), noise and (jpeg_last) JPEG."""
        if rng.random() < r.blur_prob:
            img = blur(img, random_kernel(r, rng))
        kind = int(rng.choice(3, p=r.resize_probs))
        factor = (rng.uniform(1, r.resize_range[1]), rng.uniform(r.resize_range[0], 1), 1.0)[kind]
        shape = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
        img = resize(img, shape, RESIZE_MODES[int(rng.integers(3))])
        gray = rng.random() < r.gray_noise_prob
        if rng.random() < r.gaussian_noise_prob:
            img = add_gaussian_noise(img, rng, rng.uniform(*r.noise_sigma), gray)
        else:
            img = add_poisson_noise(img, rng, rng.uniform(*r.poisson_scale), gray)
        if jpeg_last:
            img, _ = jpeg(img, round(rng.uniform(*r.jpeg_quality)))
        return img


def random_kernel(r: StageRanges, rng: np.random.Generator) -> np.ndarray:
    """A blur kernel drawn as Real-ESRGAN draws them: a sinc with chance r.sinc_prob, else one of six shapes."""
    size = int(rng.choice(r.kernel_sizes))
    if rng.random() < r.sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, rng.uniform(low, math.pi))
    kind = int(rng.choice(6, p=r.kernel_probs))
    shape = ("gaussian", "generalized", "plateau")[kind // 2]
    sx = rng.uniform(*r.sigma)
    sy, theta = (sx, 0.0) if kind % 2 == 0 else (rng.uniform(*r.sigma), rng.uniform(-math.pi, math.pi))
    beta = 1.0
    if shape != "gaussian":
        lo, hi = r.beta_generalized if shape == "generalized" else r.beta_plateau
        beta = rng.uniform(lo, 1) if rng.random() < 0.5 and lo < 1 else rng.uniform(1, hi)
    return gaussian_kernel(size, sx, sy, theta, shape, beta)


# ---------------------------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named degradation; `apply(hr, scale, rng)` makes the LR. hr: uint8 (H, W, C) with H and W multiples
    of the scale's numerator; the LR is (H / scale, W / scale, C)."""

    name: str
    steps: tuple[tuple[str, float], ...] = ()  # ("blur" | "noise" | "jpeg", value), for simple presets
    mixture: tuple[tuple[str, float], ...] = ()  # (component, weight), for mixtures

    def apply(self, hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
        squeeze = hr.ndim == 2
        hr = hr[..., None] if squeeze else hr
        if hr.dtype != np.uint8:
            raise ConfigError(f"degradations work on 8-bit images, got {hr.dtype}")
        if self.mixture:
            weights = np.array([w for _, w in self.mixture], dtype=np.float64)
            name = self.mixture[int(rng.choice(len(weights), p=weights / weights.sum()))][0]
            out = COMPONENTS[name](hr, scale, rng)
        elif self.name in COMPONENTS:
            out = COMPONENTS[self.name](hr, scale, rng)
        else:
            out = self._simple(hr, scale, rng)
        return Degraded(out.pixels[..., 0] if squeeze else out.pixels, out.jpeg, out.condition)

    def _simple(self, hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
        img = hr
        for kind, value in self.steps:
            if kind == "blur":
                img = blur(img, gaussian_kernel(2 * math.ceil(3 * value) + 1, value))
        img, data = shrink(img, scale), None
        quality, variance = None, 0.0
        for kind, value in self.steps:
            if kind == "noise":
                img, data = add_gaussian_noise(img, rng, value), None
                variance += value**2
            elif kind == "jpeg":
                img, data = jpeg(img, int(value))
                quality = int(value) if quality is None else min(quality, int(value))
        return Degraded(img, data, condition(quality, math.sqrt(variance)))

    @property
    def is_clean(self) -> bool:
        return self.name in ("bicubic", "clean")


REAL = RealChain()

# What people's files carry, and the weights the photo model trains with. Web pictures first: most files people
# enlarge were resized and saved as JPEG somewhere on the way; then phone pictures with their noise at the
# resolution it was made (correlated between neighbours), and noisy pictures that were made smaller since (the
# shrink averages neighbours, so the noise left is close to white: also film grain and scanner noise); clean
# ones, so that a condition of 0 stays faithful to a clean input; a little lens blur, which the model must undo
# without being told (its condition is 0, like a clean picture's, so more of it would cost clean fidelity); and
# Real-ESRGAN's heavy chain as a minority (old, many-times-processed photos), told as the strongest condition.
# Both kinds of noise are told by their sigma, so the knob means the same for each (with camera noise alone,
# white noise was best served at about 0.6 times its sigma: docs/photos.md).
FILES_MIX: tuple[tuple[str, float], ...] = (
    ("clean", 0.15),
    ("web", 0.35),
    ("camera", 0.20),
    ("grain", 0.10),
    ("lens", 0.10),
    ("real", 0.10),
)


def downscale(hr: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """The LR by a resize software would do: the MATLAB bicubic (antialiased) with chance 0.55, else area,
    bilinear or bicubic (plain interpolation, no antialiasing) with chance 0.15 each."""
    kind = int(rng.choice(4, p=(0.55, 0.15, 0.15, 0.15)))
    if kind == 0:
        return shrink(hr, scale)
    return resize(hr, (round(hr.shape[0] / scale), round(hr.shape[1] / scale)), RESIZE_MODES[kind - 1])


def _clean(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    return Degraded(shrink(hr, scale))


def _real(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    return REAL.apply(hr, scale, rng)._replace(condition=(1.0, 1.0))


def _photo(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """mdsr-medium-photo's mixture: half `real`, half `_light`."""
    return _real(hr, scale, rng) if rng.random() < 0.5 else _light(hr, scale, rng)


def _maybe_jpeg(
    img: np.ndarray, rng: np.random.Generator, chance: float, low: int, high: int
) -> tuple[np.ndarray, bytes | None, int | None]:
    """(pixels, file, quality): with `chance` a JPEG save of quality low-high, else the pixels as they are."""
    if rng.random() < chance:
        quality = round(rng.uniform(low, high))
        return *jpeg(img, quality), quality
    return img, None, None


def _light(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """The other half of 'photo': the bicubic shrink, then Gaussian noise (sigma 1-20, gray with chance 0.4)
    with chance 0.5, then JPEG (quality 30-95) with chance 0.7; 15% of these stay clean."""
    img, sigma = shrink(hr, scale), 0.0
    if rng.random() < 0.5:
        sigma = rng.uniform(1, 20)
        img = add_gaussian_noise(img, rng, sigma, gray=rng.random() < 0.4)
    img, data, quality = _maybe_jpeg(img, rng, 0.7, 30, 95)
    return Degraded(img, data, condition(quality, sigma))


def _web(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """A picture from the web: with chance 0.4 first a camera's JPEG (quality 80-95) at full size, then the
    resize (`downscale`), then the site's JPEG (quality 30-95, 4:2:0). Its condition is the last quality,
    the one a file's tables tell."""
    img = hr
    if rng.random() < 0.4:
        img, _ = jpeg(img, round(rng.uniform(80, 95)))
    img = downscale(img, scale, rng)
    quality = round(rng.uniform(30, 95))
    pixels, data = jpeg(img, quality)
    return Degraded(pixels, data, condition(quality))


def _camera(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """A phone's picture: the resize, with chance 0.5 a demosaic-like Gaussian blur (0.3-0.6 px), camera noise
    (`add_camera_noise`: sigma 1-15, shot share 0.2-0.9, colour share 0.2-0.7, spread 0.3-0.8 px), and with
    chance 0.6 the phone's JPEG (quality 75-95)."""
    img = downscale(hr, scale, rng)
    if rng.random() < 0.5:
        width = rng.uniform(0.3, 0.6)
        img = blur(img, gaussian_kernel(2 * math.ceil(3 * width) + 1, width))
    sigma = rng.uniform(1, 15)
    img = add_camera_noise(img, rng, sigma, rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.8))
    img, data, quality = _maybe_jpeg(img, rng, 0.6, 75, 95)
    return Degraded(img, data, condition(quality, sigma))


def _grain(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """A noisy picture made smaller: the MATLAB bicubic shrink, then white Gaussian noise of sigma 1-20 (the
    same in the three channels with chance 0.3), and with chance 0.4 a JPEG (quality 75-95)."""
    sigma = rng.uniform(1, 20)
    img = add_gaussian_noise(shrink(hr, scale), rng, sigma, gray=rng.random() < 0.3)
    img, data, quality = _maybe_jpeg(img, rng, 0.4, 75, 95)
    return Degraded(img, data, condition(quality, sigma))


def _soft(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """A picture at a camera's full resolution, soft at the pixel level (its lens and demosaicing resolve less
    than a pixel): the resize (`downscale`), a Gaussian blur of 0.5-1.5 px, with chance 0.3 mild camera noise
    (sigma 1-4), and with chance 0.7 a JPEG of quality 30-95. Blurred, often compressed, rarely noisy: what the
    chain detector (training.damage) must not take for Real-ESRGAN's chain. Its condition is the JPEG and the
    noise; the blur is not told."""
    width = rng.uniform(0.5, 1.5)
    img = blur(downscale(hr, scale, rng), gaussian_kernel(2 * math.ceil(3 * width) + 1, width))
    sigma = 0.0
    if rng.random() < 0.3:
        sigma = rng.uniform(1, 4)
        img = add_camera_noise(img, rng, sigma, rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.7), 0.5)
    img, data, quality = _maybe_jpeg(img, rng, 0.7, 30, 95)
    return Degraded(img, data, condition(quality, sigma))


def _lens(hr: np.ndarray, scale: float, rng: np.random.Generator) -> Degraded:
    """Mild lens trouble: defocus (a disk of radius 0.4-1.2 LR px) or, as often, camera shake (a line of 1-3
    LR px at any angle) on the HR, the MATLAB bicubic shrink, and with chance 0.5 a JPEG (quality 80-95)."""
    if rng.random() < 0.5:
        kernel = disk_kernel(rng.uniform(0.4, 1.2) * scale)
    else:
        kernel = motion_kernel(rng.uniform(1, 3) * scale, rng.uniform(0, math.pi))
    img, data, quality = _maybe_jpeg(shrink(blur(hr, kernel), scale), rng, 0.5, 80, 95)
    return Degraded(img, data, condition(quality))


COMPONENTS = {
    "clean": _clean,
    "bicubic": _clean,
    "real": _real,
    "photo": _photo,
    "web": _web,
    "camera": _camera,
    "grain": _grain,
    "lens": _lens,
    "soft": _soft,
}


def parse_preset(text: str) -> Preset:
    """A Preset from its name: bicubic, clean, real, photo, jpeg:Q, noise:SIGMA, blur:SIGMA, or simple ones
    joined by '+'. Raises ConfigError naming what is wrong."""
    text = text.strip()
    if text in COMPONENTS:
        return Preset(text)
    if text == "files":
        return Preset(text, mixture=FILES_MIX)
    if text.startswith("mix:"):
        return _parse_mixture(text)
    steps = []
    for part in text.split("+"):
        kind, _, value = part.strip().partition(":")
        if kind not in ("jpeg", "noise", "blur") or not value:
            raise ConfigError(
                f"unknown degradation '{text}': use {', '.join(COMPONENTS)}, files, jpeg:Q, noise:SIGMA, blur:SIGMA, "
                f"several of these three joined by '+' (e.g. blur:1+noise:5+jpeg:70), or a mixture of named "
                f"ones (e.g. mix:clean=0.2,web=0.8)"
            )
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"degradation '{part}': '{value}' is not a number") from None
        if kind == "jpeg" and not (number == int(number) and 1 <= number <= 100):
            raise ConfigError(f"degradation '{part}': JPEG quality must be an integer from 1 to 100")
        limit = 10 if kind == "blur" else 50  # wider blurs would need finer kernel quantisation than 2^-16
        if kind != "jpeg" and not (math.isfinite(number) and 0 < number <= limit):
            raise ConfigError(f"degradation '{part}': sigma must be in (0, {limit}]")
        steps.append((kind, number))
    return Preset(text, tuple(steps))


def _parse_mixture(text: str) -> Preset:
    """mix:NAME=WEIGHT,...: named presets (not mixtures themselves) with weights > 0."""
    parts = []
    for item in text[len("mix:") :].split(","):
        name, _, weight = item.strip().partition("=")
        if name not in COMPONENTS:
            raise ConfigError(f"degradation '{text}': '{name}' is not one of {', '.join(COMPONENTS)}")
        try:
            w = float(weight)
        except ValueError:
            raise ConfigError(
                f"degradation '{text}': the weight of '{name}' must be a number, got '{weight}'"
            ) from None
        if not (math.isfinite(w) and w > 0):
            raise ConfigError(f"degradation '{text}': the weight of '{name}' must be above 0")
        parts.append((name, w))
    return Preset(text, mixture=tuple(parts))


def degrade(hr: np.ndarray, scale: float, preset: str | Preset, seed: int = 0) -> Degraded:
    """The LR of an HR image under a preset, with random choices drawn from (seed, image)."""
    preset = parse_preset(preset) if isinstance(preset, str) else preset
    return preset.apply(hr, scale, image_rng(seed, hr))
