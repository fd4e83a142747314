"""Time superres.correct on RGB uint8 images: milliseconds per output megapixel (target: <= 20 ms).

python benchmarks/correction_speed.py
"""

from __future__ import annotations

import argparse

import numpy as np

from common import best_time
from superres.inference.correction import correct


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    rng = np.random.default_rng(0)
    print(f"{'output size':>12} {'ms':>8} {'ms / megapixel':>15}")
    for h, w in ((720, 1280), (1080, 1920), (2160, 3840)):
        sr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ref = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        best = best_time(lambda sr=sr, ref=ref: correct(sr, ref, 40), repeat=5) * 1000
        print(f"{f'{w}x{h}':>12} {best:>8.1f} {best / (h * w / 1e6):>15.2f}")


if __name__ == "__main__":
    main()
