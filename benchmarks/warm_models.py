"""What warm models save (issue 22): `superres.upscale` on a 64x64 picture with the bundled default, cold (the
warm models, photo pairs and compiled OpenVINO models cleared before each call: the weights read, the network
built and, with OpenVINO, its converted model read from the cache folder and compiled every time) against warm.

    python benchmarks/warm_models.py

Best of 5 each, one process, this machine's CPU, precision auto.
"""

from __future__ import annotations

import sys
import time

import superres
from common import photo
from superres.inference.denoise import WARM_PAIRS
from superres.inference.openvino import COMPILED
from superres.inference.warm import WARM


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    img = photo(64, 64)
    superres.upscale(img)  # imports and first-call setup out of the way

    def cold() -> None:
        WARM.clear()
        WARM_PAIRS.clear()
        COMPILED.clear()
        superres.upscale(img)

    cold_s, warm_s = best(cold), best(lambda: superres.upscale(img))
    print(f"64x64 x2, bundled default: cold {cold_s * 1000:.0f} ms, warm {warm_s * 1000:.0f} ms per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
