"""Helpers the benchmark scripts share (they run as `python benchmarks/<script>.py`, so this imports as `common`)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Seconds of the fastest of `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def photo(h: int, w: int) -> np.ndarray:
    """scikit-image's astronaut photo tiled to (h, w, 3) uint8: real image content without any data files."""
    from skimage import data

    tile = data.astronaut()
    reps = (h // tile.shape[0] + 1, w // tile.shape[1] + 1, 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:h, :w])


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo), else the machine's architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The photo benchmarks (photo_frontier, photo_noise_shift, photo_stages) score on the 12 training images the photo
# model's runs held out: the training folders and the split of `superres train --holdout 12`.
PHOTO_DATA = ["../shared/data/train/T91", "../shared/data/train/BSD200", "../shared/data/train/BSDS500-test"]


def photo_held_out(scales: list[int]) -> dict:
    """{scale: the 12 held-out training images (Samples, HR and clean LR)}, each image read once."""
    from superres.training.config import TrainConfig
    from superres.training.loop import load_training_data

    return load_training_data(TrainConfig(data=PHOTO_DATA, scale=scales, holdout=12))[1]


def degraded_picture(hr: np.ndarray, scale: int, kind: str):
    """(the Degraded LR of `hr` by `kind`, seed 0; the Picture `--denoise auto` reads: its pixels and, where the
    last step saved a JPEG, the quality of that file's tables)."""
    from superres.imaging.degrade import degrade
    from superres.imaging.io import Picture
    from superres.imaging.quality import jpeg_file_quality

    d = degrade(hr, scale, kind, seed=0)
    return d, Picture(d.pixels, jpeg_quality=None if d.jpeg is None else jpeg_file_quality(d.jpeg))


def y_psnr(handle, lr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    """Y-PSNR against `hr` of a model handle's output for `lr` (fp32, PyTorch, on the CPU), `scale` px shaved."""
    from superres.evaluation.metrics import psnr
    from superres.inference.upscaler import Upscaler

    sr = Upscaler(handle, scale, device="cpu", precision="fp32", backend="torch")(lr.astype(np.float32))
    return psnr(sr, hr, shave=scale, channel="y")


def realesr_general_dn(folder: Path, dn: float = 0.5):
    """realesr-general-x4v3 blended with its wdn twin as Real-ESRGAN's `-dn` does (dn * general + (1 - dn) * wdn;
    its default is 0.5), from the files benchmarks/ncnn_srvgg.py wrote to `folder`; None where they are not there."""
    from superres.models import load_model
    from superres.models.checkpoints import interpolate

    general, wdn = folder / "realesr-general-x4v3.safetensors", folder / "realesr-general-wdn-x4v3.safetensors"
    if not (general.is_file() and wdn.is_file()):
        return None
    return interpolate(load_model(wdn), load_model(general), dn)
