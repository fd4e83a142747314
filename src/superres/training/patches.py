"""Training patches: random aligned LR/HR crops of in-memory samples, with augmentations, at one scale
(PatchSampler) or several (MultiScaleSampler). Every random choice comes from a saved numpy Generator, so
a resumed run continues the same stream."""

from __future__ import annotations

import logging

import numpy as np

from superres.errors import ConfigError
from superres.imaging.datasets import Sample

log = logging.getLogger(__name__)


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
