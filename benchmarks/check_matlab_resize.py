"""Check that superres.imresize reproduces the published MATLAB-bicubic LR images bit for bit.

For every HR image of Set5 and Set14 (EDSR benchmark layout) and each scale 2, 3, 4: crop HR to a
multiple of the scale (modcrop), shrink it with imresize(..., 1/s, 'bicubic') on uint8, and compare
with LR_bicubic/X<s>/<name>x<s>.png. Prints one line per set and scale; exits 1 on any difference.

    python benchmarks/check_matlab_resize.py [--data ../shared/data/benchmark] [--sets Set5 Set14]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from superres import imresize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/benchmark"
    )
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    args = parser.parse_args()
    failures = 0
    for name in args.sets:
        hr_files = sorted((args.data / name / "HR").glob("*.png"))
        if not hr_files:
            print(f"{name}: no HR images under {args.data / name / 'HR'}")
            return 2
        for s in args.scales:
            exact, worst, t0 = 0, 0, time.perf_counter()
            for hr_path in hr_files:
                hr = np.asarray(Image.open(hr_path))
                hr = hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s]
                lr = imresize(hr, 1 / s, method="bicubic")
                ref = np.asarray(Image.open(args.data / name / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png"))
                same = lr.shape == ref.shape and np.array_equal(lr, ref)
                exact += same
                if not same:
                    diff = np.abs(lr.astype(int) - ref.astype(int)).max() if lr.shape == ref.shape else -1
                    worst = max(worst, diff)
                    print(f"  {name} x{s} {hr_path.stem}: differs (shape {lr.shape} vs {ref.shape}, max |diff| {diff})")
            failures += len(hr_files) - exact
            print(
                f"{name:6} x{s}: {exact}/{len(hr_files)} LR images bit-exact"
                f"{'' if exact == len(hr_files) else f', worst |diff| {worst}'} ({time.perf_counter() - t0:.2f} s)"
            )
    print("PASS: bit-exact" if failures == 0 else f"FAIL: {failures} image(s) differ")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
