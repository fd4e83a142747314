"""Training patches: random aligned LR/HR crops of in-memory samples, with augmentations, at one scale
(PatchSampler) or several (MultiScaleSampler). Every random choice comes from a saved numpy Generator, so
a resumed run continues the same stream."""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np
import torch

from superres.errors import ConfigError
from superres.imaging.datasets import Sample
from superres.imaging.degrade import Preset

log = logging.getLogger(__name__)


class PatchSampler:
    """Random aligned LR/HR patch batches from in-memory samples, with the 8 flips/rotations and the
    original report's brightness change as options.

    With a `degradation` (imaging.degrade), each LR patch is made from its HR patch by that preset instead
    of cut from the sample's bicubic LR. `cutblur` is then the chance that a rectangle of it is swapped
    with the clean bicubic LR of the same place (either way round), while the target stays the clean HR:
    CutBlur (Yoo et al., 2020) for a network whose input is smaller than its output, teaching it to restore
    where the input is degraded and to leave clean parts alone.

    Its whole random state is a numpy Generator whose state can be saved and restored (resumable runs).
    """

    def __init__(
        self,
        samples: list[Sample],
        scale: int,
        patch_size: int,
        batch_size: int,
        flips: bool = True,
        brightness: float = 0.0,
        rgb_permute: float = 0.0,
        degradation: Preset | None = None,
        cutblur: float = 0.0,
        conditioned: bool = False,
        seed: int = 0,
    ) -> None:
        self.samples = [s for s in samples if min(s.lr.shape[:2]) >= patch_size]
        for s in samples:
            if min(s.lr.shape[:2]) < patch_size:
                log.warning(
                    "skipping %s: LR %dx%d is smaller than a %d px patch",
                    s.name,
                    s.lr.shape[1],
                    s.lr.shape[0],
                    patch_size,
                )
        if not self.samples:
            raise ConfigError(f"no training image is large enough for {patch_size} px LR patches at x{scale}")
        self.scale, self.patch_size, self.batch_size = scale, patch_size, batch_size
        self.flips, self.brightness, self.rgb_permute = flips, brightness, rgb_permute
        self.degradation = None if degradation is None or degradation.is_clean else degradation
        self.cutblur = cutblur
        self.conditioned = conditioned and self.degradation is not None
        self.rng = np.random.default_rng(seed)

    @property
    def state(self) -> dict:
        return cast(dict[str, Any], self.rng.bit_generator.state)  # numpy types it a Mapping; it is a new dict

    @state.setter
    def state(self, value: dict) -> None:
        self.rng.bit_generator.state = value

    def _choose(self) -> tuple[list[tuple[int, int, int, int, bool, np.ndarray | None]], np.ndarray | None]:
        """The random choices of one batch: per patch (image, y, x, quarter turns, flip, channel order or
        None), and the brightness factors (N, 1, 1, 1) or None."""
        p = self.patch_size
        choices = []
        for i in self.rng.integers(len(self.samples), size=self.batch_size):
            lr = self.samples[i].lr
            y = int(self.rng.integers(lr.shape[0] - p + 1))
            x = int(self.rng.integers(lr.shape[1] - p + 1))
            k, flip = (int(self.rng.integers(4)), bool(self.rng.integers(2))) if self.flips else (0, False)
            order = None
            if self.rgb_permute and lr.shape[2] == 3 and self.rng.random() < self.rgb_permute:
                order = self.rng.permutation(3)
            choices.append((int(i), y, x, k, flip, order))
        factors = None
        if self.brightness > 0:  # one factor per patch, the same for LR and HR
            factors = self.rng.uniform(1 - self.brightness, 1 + self.brightness, size=(self.batch_size, 1, 1, 1))
        return choices, factors

    def sample(self) -> tuple[np.ndarray, ...]:
        """(lr, hr) arrays (N, p, p, C) and (N, p*s, p*s, C): uint8, or float32 0-255 with brightness; when
        `conditioned`, also each patch's degradation condition (N, 2) float32."""
        p, s = self.patch_size, self.scale
        choices, factors = self._choose()
        lrs, hrs, conditions = [], [], []
        for i, y, x, k, flip, order in choices:
            lr = self.samples[i].lr[y : y + p, x : x + p]
            hr = self.samples[i].hr[y * s : (y + p) * s, x * s : (x + p) * s]
            lr, hr = np.rot90(lr, k), np.rot90(hr, k)
            if flip:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
            if order is not None:
                lr, hr = lr[..., order], hr[..., order]
            if self.degradation is not None:
                lr, condition = self._degrade(lr, np.ascontiguousarray(hr))
                conditions.append(condition)
            lrs.append(lr)
            hrs.append(hr)
        lr_batch, hr_batch = np.stack(lrs), np.stack(hrs)
        if factors is not None:
            lr_batch = np.clip(lr_batch * factors, 0, 255).astype(np.float32)
            hr_batch = np.clip(hr_batch * factors, 0, 255).astype(np.float32)
        if self.conditioned:
            return lr_batch, hr_batch, np.array(conditions, dtype=np.float32)
        return lr_batch, hr_batch

    def _degrade(self, clean: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """The degraded LR patch of an HR patch and its condition; with chance `cutblur`, a rectangle (about 0.7
        of each side) swapped with the clean LR patch."""
        assert self.degradation is not None  # sample() calls this only with a degradation
        lr, _, condition = self.degradation.apply(hr, self.scale, self.rng)
        if self.cutblur and self.rng.random() < self.cutblur:
            p = self.patch_size
            side = int(p * float(np.clip(self.rng.normal(0.7, 0.1), 0.3, 0.9)))
            y, x = (int(v) for v in self.rng.integers(p - side + 1, size=2))
            inside, outside = (clean, lr) if self.rng.random() < 0.5 else (lr, clean)
            lr = outside.copy()
            lr[y : y + side, x : x + side] = inside[y : y + side, x : x + side]
        return lr, condition


class DevicePatchSampler(PatchSampler):
    """PatchSampler whose images live on the training device (a GPU), where patches are cut, turned and
    flipped, so that no batch crosses the bus and the data loader cannot starve the GPU. The random choices
    are PatchSampler's (same seed, same patches); batches come as float32 (N, C, H, W) tensors."""

    def __init__(
        self, samples: list[Sample], scale: int, patch_size: int, batch_size: int, device: torch.device | str, **options
    ) -> None:
        super().__init__(samples, scale, patch_size, batch_size, **options)
        self.device = torch.device(device)
        self.lr_images = [torch.from_numpy(np.ascontiguousarray(s.lr)).to(self.device) for s in self.samples]
        self.hr_images = [torch.from_numpy(np.ascontiguousarray(s.hr)).to(self.device) for s in self.samples]

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """(lr, hr) float32 tensors (N, C, p, p) and (N, C, p*s, p*s) on the device, 0-255."""
        p, s = self.patch_size, self.scale
        choices, factors = self._choose()
        lrs, hrs = [], []
        for i, y, x, k, flip, order in choices:
            lr = torch.rot90(self.lr_images[i][y : y + p, x : x + p], k, dims=(0, 1))  # (p, p, C)
            hr = torch.rot90(self.hr_images[i][y * s : (y + p) * s, x * s : (x + p) * s], k, dims=(0, 1))
            if flip:
                lr, hr = lr.flip(1), hr.flip(1)
            if order is not None:
                index = torch.as_tensor(order, device=self.device)
                lr, hr = lr[..., index], hr[..., index]
            lrs.append(lr)
            hrs.append(hr)
        lr_batch, hr_batch = torch.stack(lrs), torch.stack(hrs)  # (N, H, W, C)
        if factors is not None:
            f = torch.as_tensor(factors, device=self.device)
            lr_batch = (lr_batch.double() * f).clamp(0, 255)
            hr_batch = (hr_batch.double() * f).clamp(0, 255)
        return lr_batch.permute(0, 3, 1, 2).float(), hr_batch.permute(0, 3, 1, 2).float()


class MultiScaleSampler:
    """Batches for several scales: each batch is drawn at one scale, chosen at random (uniformly, or with the
    given weight of each scale), from that scale's PatchSampler. LR patches have the same size at every scale
    (MDSR's recipe)."""

    def __init__(
        self, samplers: dict[int, PatchSampler], seed: int = 0, weights: dict[int, float] | None = None
    ) -> None:
        self.samplers = samplers
        self.scales = sorted(samplers)
        self.rng = np.random.default_rng(seed)
        self.p = None if weights is None else np.array([weights[s] for s in self.scales]) / sum(weights.values())

    @property
    def state(self) -> dict:
        return {
            "choice": self.rng.bit_generator.state,
            "scales": {str(s): sampler.state for s, sampler in self.samplers.items()},
        }

    @state.setter
    def state(self, value: dict) -> None:
        if sorted(int(s) for s in value["scales"]) != self.scales:
            raise ConfigError(f"sampler state is for x{', x'.join(value['scales'])}, not these scales")
        self.rng.bit_generator.state = value["choice"]
        for s, sampler_state in value["scales"].items():
            self.samplers[int(s)].state = sampler_state

    def sample(self) -> tuple:
        """(scale, lr, hr) with lr (N, p, p, C) and hr (N, p*scale, p*scale, C), and the patches' conditions
        (N, 2) where the samplers are `conditioned`."""
        if self.p is None:  # uniform: the draws of the runs made before weights existed
            scale = self.scales[int(self.rng.integers(len(self.scales)))]
        else:
            scale = self.scales[int(self.rng.choice(len(self.scales), p=self.p))]
        return (scale, *self.samplers[scale].sample())
