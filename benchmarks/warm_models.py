"""What warm models save (issue 22): `superres.upscale` on a 64x64 picture with the bundled default, cold (the
warm models, photo pairs and compiled OpenVINO models cleared before each call: the weights read, the network
built and, with OpenVINO, its converted model read from the cache folder and compiled every time) against warm.

    python benchmarks/warm_models.py

Best of 5 each, one process, this machine's CPU, precision auto.
"""

from __future__ import annotations

import sys

import superres
from common import best_time, photo
from superres.inference.denoise import WARM_PAIRS
from superres.inference.openvino import COMPILED
from superres.inference.warm import WARM


def main() -> int:
    img = photo(64, 64)

    def cold() -> None:
        WARM.clear()
        WARM_PAIRS.clear()
        COMPILED.clear()
        superres.upscale(img)

    cold_s, warm_s = best_time(cold, 5), best_time(lambda: superres.upscale(img), 5)
    print(f"64x64 x2, bundled default: cold {cold_s * 1000:.0f} ms, warm {warm_s * 1000:.0f} ms per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
