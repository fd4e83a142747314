"""Knowledge distillation: trained models (teachers) make the training targets.

`Teachers` loads any weights files superres reads (`models.load_model`: published SPAN, RLFN, IMDN, CARN-M, ...
checkpoints, our own files) and, for LR pixels at one scale, returns the mean of the outputs of every teacher that
has that scale, optionally each averaged over the 8 flips and rotations (self-ensemble). Teachers run in
inference's precision rules (`resolve_precision('auto')` for the device and what the family tolerates) and in
inference's pixel range; targets come back clipped to 0..255, as inference writes pixels. The time they take is
counted, so a run can report what distillation costs.

Two ways to use them (training/loop.py): once per training image before the first step (`distilled_samples`:
the whole LR picture, so the teachers see every pixel's real surroundings, and no step waits for them), or once
per batch of patches (`targets`, TrainConfig.teacher_per_batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from superres.errors import ConfigError
from superres.imaging.datasets import Sample
from superres.inference.devices import resolve_precision
from superres.models.checkpoints import load_model
from superres.models.handle import ModelHandle

# LR pixels at the edge of a patch where the HR, not the teachers, is the target: the teachers see the patch's zero
# padding there, as no pixel of a whole picture's inside does
DISTILL_MARGIN = 3


def with_hr_border(target: torch.Tensor, hr: torch.Tensor, margin: int) -> torch.Tensor:
    """`target` (N, C, H, W) with its outer `margin` pixels on every side taken from `hr` (same shape)."""
    h, w = target.shape[-2:]
    if 2 * margin >= min(h, w):
        return hr
    out = hr.clone()
    out[..., margin : h - margin, margin : w - margin] = target[..., margin : h - margin, margin : w - margin]
    return out


@dataclass
class Teacher:
    name: str
    handle: ModelHandle
    precision: str  # fp32, bf16 or fp16: autocast while it runs


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips and rotations (k in 0..7) of a (N, C, H, W) batch."""
    x = torch.rot90(x, k % 4, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if k >= 4 else x


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of `dihedral(., k)`."""
    x = torch.flip(x, dims=(3,)) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(2, 3))


class Teachers:
    """The teachers of a run, by scale. `targets(lr, scale)` is None at a scale no teacher has."""

    def __init__(self, paths: list[str], scales: list[int], n_colors: int, device: torch.device, flips: bool) -> None:
        self.flips = flips
        self.seconds = 0.0  # spent in `targets`, all calls together
        self.by_scale: dict[int, list[Teacher]] = {s: [] for s in scales}
        for path in paths:
            handle = load_model(path).to(device).eval()
            if handle.onnx is not None:
                raise ConfigError(f"teacher {path}: an ONNX export has no PyTorch network to run while training")
            if handle.n_colors != n_colors:
                raise ConfigError(f"teacher {path} has {handle.n_colors} colour channels; the run trains {n_colors}")
            for p in handle.parameters():
                p.requires_grad_(False)
            teacher = Teacher(str(path), handle, resolve_precision("auto", device, handle.precisions))
            for s in handle.scales:
                if s in self.by_scale:
                    self.by_scale[s].append(teacher)
        unused = [p for p in paths if not any(t.name == str(p) for ts in self.by_scale.values() for t in ts)]
        if unused:
            raise ConfigError(f"teacher {unused[0]} has none of the scales trained (x{', x'.join(map(str, scales))})")

    def covers(self, scale: int) -> bool:
        return bool(self.by_scale.get(scale))

    def describe(self) -> str:
        return "; ".join(
            f"x{s}: {', '.join(f'{t.handle.describe()} ({t.precision})' for t in ts) or 'none (ground truth only)'}"
            for s, ts in self.by_scale.items()
        )

    @torch.no_grad()
    def targets(self, lr: torch.Tensor, scale: int) -> torch.Tensor | None:
        """The teachers' mean output for `lr` ((N, C, H, W) float, 0..255) at `scale`: (N, C, sH, sW), 0..255,
        float32. None where no teacher has the scale."""
        teachers = self.by_scale.get(scale) or []
        if not teachers:
            return None
        start = time.perf_counter()
        total = None
        views = range(8) if self.flips else range(1)
        for teacher in teachers:
            k = teacher.handle.pixel_range / 255.0
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(teacher.precision)
            for v in views:
                with torch.autocast(lr.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    out = teacher.handle.run(dihedral(lr, v) * k, scale)
                out = undo_dihedral(out.float(), v) / k
                total = out if total is None else total + out
        assert total is not None
        mean = (total / (len(teachers) * len(views))).clamp_(0, 255)
        self.seconds += time.perf_counter() - start
        return mean

    def batch_targets(self, lr: torch.Tensor, hr: torch.Tensor, scale: int) -> torch.Tensor | None:
        """`targets` for a batch of patches, with the HR kept at the patches' edges (DISTILL_MARGIN)."""
        target = self.targets(lr, scale)
        return None if target is None else with_hr_border(target, hr, DISTILL_MARGIN * scale)


def distilled_samples(samples: list[Sample], teachers: Teachers, scale: int, weight: float) -> list[Sample]:
    """The samples with each HR replaced by `weight` x the teachers' output for its whole LR + (1 - weight) x the
    HR (float32, 0..255), where teachers have the scale; the samples as they are otherwise."""
    if not teachers.covers(scale):
        return samples
    device = teachers.by_scale[scale][0].handle.device
    out = []
    for s in samples:
        lr = torch.from_numpy(np.ascontiguousarray(s.lr)).to(device).permute(2, 0, 1)[None].float()
        target = teachers.targets(lr, scale)
        assert target is not None, "covered above"
        mixed = target[0].permute(1, 2, 0).cpu().numpy()
        if weight < 1:
            mixed = weight * mixed + (1 - weight) * s.hr.astype(np.float32)
        out.append(Sample(s.name, s.lr, np.ascontiguousarray(mixed, dtype=np.float32)))
    return out
