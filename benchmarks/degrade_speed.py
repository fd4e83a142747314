"""Is training bound by the degradations? Degraded patches/s of each preset on one thread, against the
patches/s that training consumes, in the same run.

Patches are 48 px LR (HR 96/144/192 at x2/x3/x4, a third each) cut from scikit-image's astronaut photo.
Training is mdsr-medium, bf16, batch 16, measured twice with the loop's pieces (train_throughput.py):
with the clean sampler, and with the `photo` sampler made inline (no prefetch thread, the worst case).

    python benchmarks/degrade_speed.py
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from common import photo
from superres.imaging.degrade import parse_preset
from train_throughput import throughput


def patches_per_second(preset: str, seconds: float = 3.0) -> float:
    p = parse_preset(preset)
    rng = np.random.default_rng(0)
    img = photo(600, 600)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = (2, 3, 4)[done % 3]
        y, x = (int(v) for v in rng.integers(0, 600 - 48 * s, size=2))
        p.apply(img[y : y + 48 * s, x : x + 48 * s], s, rng)
        done += 1
    return done / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["photo", "real", "jpeg:75", "noise:10", "blur:1"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # the prefetch thread is one thread
    torch.set_num_threads(torch.get_num_threads())
    rates = {name: patches_per_second(name) for name in args.presets}
    clean, _ = throughput("mdsr-medium", True, torch.device("cpu"), 16, 48, args.steps, False)
    degraded, _ = throughput("mdsr-medium", True, torch.device("cpu"), 16, 48, args.steps, False, degradation="photo")
    need = clean * 16
    print(
        f"training mdsr-medium bf16, batch 16: {clean:.2f} steps/s = {need:.1f} patches/s with the clean sampler; "
        f"{degraded:.2f} steps/s with the photo degradations made inline ({degraded / clean:.0%})"
    )
    print(f"{'preset':<10} {'patches/s (1 thread)':>21} {'x training need':>16}")
    for name, rate in rates.items():
        print(f"{name:<10} {rate:>21.1f} {rate / need:>16.1f}")
    verdict = "not bound" if rates.get("photo", np.inf) > need else "BOUND"
    print(
        f"training on 'photo' is {verdict} by the degradations: one prefetch thread makes "
        f"{rates.get('photo', float('nan')) / need:.1f}x the patches a step consumes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
