"""The denoise knob: a clean model and its photo counterpart, and `auto`, which reads the setting off the picture.

Two kinds of photo model. A conditioned one (mspan-photo: `conditions` > 0) is told the damage (jpeg, noise),
each 0..1: `--denoise S` tells it (S, S), and auto tells it what the damage estimator (imaging.damage) reads,
the jpeg part from the file's quantisation tables where it is a JPEG. For each setting the network is
specialised into a plain one (MSPAN.specialise), so it runs as fast as the clean model. A damage of (0, 0)
runs the clean model itself. A plain photo model (mdsr-medium-photo) is blended with its clean model by one
strength instead (0 = the clean model, 1 = the photo model), and auto chooses that strength by two ramps:

auto: s = max(s_jpeg, s_noise), each a ramp clipped to [0, 1]:
    s_jpeg  = (JPEG_CLEAN - quality) / (JPEG_CLEAN - JPEG_FULL)   for a JPEG file (its quantisation tables)
    s_noise = (sigma - NOISE_CLEAN) / (NOISE_FULL - NOISE_CLEAN)  sigma: the measured noise (gray levels)
The four end points were fitted by benchmarks/denoise_frontier.py on the 10 images the photo model's run held
out, never on the benchmark sets: for each JPEG quality and noise level, the Y-PSNR at x2 of every strength
0, 0.1, ..., 1, and the ramps that lose least against the best strength. The noise ramp is also held to an
expected loss of 0.01 dB on clean photos, over the noise readings of all 291 training images' clean LR:
texture reads as noise (5% of them read above 4.5), so only a reading of 9 or more is taken as noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from superres.errors import CheckpointError, ConfigError
from superres.imaging.damage import estimate_damage
from superres.imaging.degrade import JPEG_ONE
from superres.imaging.io import Picture
from superres.imaging.quality import noise_sigma
from superres.inference.warm import WARM, Lru
from superres.models.base import conditions_of
from superres.models.checkpoints import interpolate
from superres.models.handle import ModelHandle
from superres.models.registry import photo_partner

log = logging.getLogger(__name__)

JPEG_CLEAN, JPEG_FULL = 100, 50  # quality at and above which the clean model is used; at and below, full strength
NOISE_CLEAN, NOISE_FULL = 9.0, 10.25  # measured sigma (8-bit levels) at and below: clean; at and above: full
STEP = 0.05  # strengths are rounded to this, so a folder of similar photos shares a few blended networks
AUTO_CHAIN = "auto+chain"  # auto, and a picture the chain detector reads as Real-ESRGAN's chain told (1, 1)
AUTOS = ("auto", AUTO_CHAIN)


@dataclass(frozen=True)
class DenoiseChoice:
    """A strength and, for auto, what it was chosen from; for a conditioned photo model, the damage it is told
    (`condition`: jpeg, noise), whose larger part is then the strength."""

    strength: float
    quality: int | None = None  # the JPEG quality read from the file, if it is a JPEG
    sigma: float | None = None  # the noise level measured on the pixels (auto only)
    condition: tuple[float, float] | None = None  # (jpeg, noise) for a conditioned photo model
    chain: float | None = None  # the chain detector's chance where it read Real-ESRGAN's chain (told (1, 1))

    @property
    def setting(self) -> float | tuple[float, float]:
        """What the photo pair runs at: the condition where there is one, else the strength."""
        return self.condition if self.condition is not None else self.strength

    def describe(self) -> str:
        """e.g. 'JPEG quality ~72, noise sigma ~2.1 -> denoise 0.8', or for a conditioned photo model
        'JPEG quality ~72 (file), noise sigma ~2.1 (estimated) -> damage jpeg 0.4, noise 0.1'"""
        if self.condition is not None:
            if self.sigma is None:
                return f"denoise {self.strength:g}"
            if self.chain is not None:
                told = f"damage jpeg {self.condition[0]:g}, noise {self.condition[1]:g}"
                return f"Real-ESRGAN-like damage chain (detected, chance {self.chain:.2f}) -> {told}"
            origin = "file" if self.quality is not None else "estimated"
            quality = self.quality if self.quality is not None else round(100 - self.condition[0] * (100 - JPEG_ONE))
            return (
                f"JPEG quality ~{quality} ({origin}), noise sigma ~{self.sigma:.1f} (estimated) -> damage jpeg "
                f"{self.condition[0]:g}, noise {self.condition[1]:g}"
            )
        if self.sigma is None:
            return f"denoise {self.strength:g}"
        found = ([f"JPEG quality ~{self.quality}"] if self.quality is not None else ["not a JPEG"]) + [
            f"noise sigma ~{self.sigma:.1f}"
        ]
        return f"{', '.join(found)} -> denoise {self.strength:g}"


def to_step(value: float) -> float:
    """A strength or a damage rounded to STEP, as auto tells it."""
    return round(round(value / STEP) * STEP, 2)


def _ramp(value: float, zero: float, one: float) -> float:
    return min(1.0, max(0.0, (value - zero) / (one - zero)))


def auto_damage(picture: Picture, chain: bool = False) -> DenoiseChoice:
    """The damage a conditioned photo model is told about a picture (imaging.damage): the jpeg part from the
    file's quality where it is a JPEG, else read from the pixels; the noise part from the pixels; each
    rounded to STEP. With `chain` (auto+chain), (1, 1) where the chain detector reads Real-ESRGAN's chain."""
    damage = estimate_damage(picture.pixels, picture.jpeg_quality, chain=chain)
    setting = (to_step(damage.jpeg), to_step(damage.noise))
    detected = damage.chain if damage.is_chain else None
    return DenoiseChoice(max(setting), picture.jpeg_quality, damage.sigma, setting, detected)


def auto_strength(picture: Picture) -> DenoiseChoice:
    """The strength for a picture from its JPEG quality (if it came from a JPEG) and its measured noise."""
    sigma = noise_sigma(picture.pixels)
    s = _ramp(sigma, NOISE_CLEAN, NOISE_FULL)
    if picture.jpeg_quality is not None:
        s = max(s, _ramp(picture.jpeg_quality, JPEG_CLEAN, JPEG_FULL))
    return DenoiseChoice(to_step(s), picture.jpeg_quality, sigma)


def parse_denoise(value: float | str | None) -> float | str | None:
    """'auto', 'auto+chain', a strength in [0, 1] (number or text), or None (off). Raises ConfigError
    otherwise."""
    if value is None or value in AUTOS:
        return value
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"denoise must be 'auto', '{AUTO_CHAIN}' or a strength from 0 to 1, got {value!r}") from None
    if not 0 <= s <= 1:
        raise ConfigError(f"denoise must be 'auto', '{AUTO_CHAIN}' or a strength from 0 to 1, got {value!r}")
    return s


def _cpu_fp32(model: ModelHandle) -> ModelHandle:
    copy = model.copy_to("cpu")
    copy.net.float()
    return copy


BLENDS_KEPT = 4  # blended networks a pair keeps besides its two ends (auto rounds strengths to STEP)


class PhotoPair:
    """A clean network and its photo counterpart, blended on demand: each strength made once while it is among
    the BLENDS_KEPT most recently used. The bundled pairs are kept warm (`bundled`), so the blends and, through
    them, the compiled models of the OpenVINO backend (keyed by their weights) serve the next call too."""

    def __init__(self, clean: ModelHandle, photo: ModelHandle) -> None:
        """Two models of one architecture (the same tensor names and shapes), or a clean model and a photo model
        conditioned on (jpeg, noise); CheckpointError otherwise. A strength of 0 runs `clean`."""
        if clean.onnx is not None or photo.onnx is not None:
            raise CheckpointError("an ONNX export cannot be blended: give the weights files")
        self.conditioned = conditions_of(photo) > 0
        if self.conditioned and conditions_of(photo) != 2:
            raise CheckpointError(f"{photo.name or photo.describe()}: a photo model is conditioned on (jpeg, noise)")
        if not self.conditioned:
            a, b = clean.state_dict(), photo.state_dict()
            if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
                raise CheckpointError(
                    f"cannot blend {clean.name or clean.describe()} with {photo.name or photo.describe()}: "
                    f"the architectures differ"
                )
        self.clean, self.photo = clean, photo
        self._blends: Lru[float | tuple[float, float], ModelHandle] = Lru(BLENDS_KEPT)
        self._sources: tuple[ModelHandle, ModelHandle] | None = None  # CPU copies, made at the first blend

    @classmethod
    def bundled(cls, name: str | None = None, clean: ModelHandle | None = None) -> PhotoPair | None:
        """The bundled model `name` (None: the default; `clean`: that model, loaded) with its photo model, or None
        if it has none."""
        partner = photo_partner(name)
        if partner is None:
            return None
        clean = clean if clean is not None else WARM.load(name)

        def make() -> PhotoPair:
            return cls(clean, WARM.load(partner))

        # keyed by the clean handle itself (kept alive by the pair, so its id is not reused while it is here)
        return WARM_PAIRS.get((name, id(clean)), make)

    def choose(self, picture: Picture, denoise: float | str = "auto") -> DenoiseChoice:
        """What this pair runs a picture at under a denoise setting (parse_denoise's, not None): auto and
        auto+chain read it off the picture (a blended pair has no chain setting: auto+chain is auto there), a
        strength is fixed."""
        if denoise not in AUTOS:
            return self.fixed(float(denoise))
        return auto_damage(picture, denoise == AUTO_CHAIN) if self.conditioned else auto_strength(picture)

    def fixed(self, strength: float) -> DenoiseChoice:
        """--denoise S: the strength, told to a conditioned photo model as the damage (S, S)."""
        return DenoiseChoice(strength, condition=(strength, strength) if self.conditioned else None)

    def at(self, setting: float | tuple[float, float]) -> ModelHandle:
        """The network for a strength, or for a conditioned photo model a damage (jpeg, noise); a strength S
        stands for the damage (S, S), and a damage for the strength max(jpeg, noise) with a blended pair."""
        if self.conditioned:
            pair = setting if isinstance(setting, tuple) else (setting, setting)
            key: float | tuple[float, float] = (round(float(pair[0]), 4), round(float(pair[1]), 4))
            if key == (0.0, 0.0):
                return self.clean
            return self._blends.get(key, lambda: self._specialise(key))
        key = round(float(max(setting) if isinstance(setting, tuple) else setting), 4)
        if key in (0.0, 1.0):
            return self.clean if key == 0.0 else self.photo
        return self._blends.get(key, lambda: self._blend(key))

    def _specialise(self, condition: tuple[float, float]) -> ModelHandle:
        net = self.photo.net.specialise(condition)  # type: ignore[operator]
        name = f"{self.photo.name}@{condition[0]:g},{condition[1]:g}" if self.photo.name else ""
        return replace(self.photo, net=net, config=net.config, name=name)

    def _blend(self, strength: float) -> ModelHandle:
        if self._sources is None:  # fp32 CPU copies, whatever device and dtype the two networks have
            self._sources = (_cpu_fp32(self.clean), _cpu_fp32(self.photo))
        return interpolate(*self._sources, strength).eval()


WARM_PAIRS: Lru[tuple, PhotoPair] = Lru(2)  # the bundled pairs in use (PhotoPair.bundled)
