"""Peak memory of `superres upscale` on a 4000x3000 RGB PNG at x2 with default settings, in this process.

    python benchmarks/peak_memory.py [MODEL] [--size 4000x3000]

Run it as its own process (inference_speed.py does): the figure is this process's peak resident set
(VmHWM on Linux; ru_maxrss elsewhere, which on Linux would also count a forking parent's pages).
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

from superres.cli import main as cli
from superres.imageio import Picture, write_image


def peak_mb() -> float:
    status = Path("/proc/self/status")
    found = re.search(r"VmHWM:\s+(\d+) kB", status.read_text()) if status.exists() else None
    return int(found.group(1)) / 1024 if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def photo(h: int, w: int) -> np.ndarray:
    from skimage import data

    tile = data.astronaut()
    return np.ascontiguousarray(np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[1] + 1, 1))[:h, :w])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="edsr-medium-x2")
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the input")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        write_image(Path(tmp) / "in.png", Picture(photo(h, w)))
        before = peak_mb()
        code = cli(["upscale", str(Path(tmp) / "in.png"), "--model", args.model, "-o", str(Path(tmp) / "out.png"), "--quiet"])
    print(f"peak RSS {peak_mb():.0f} MB (before upscaling: {before:.0f} MB)")
    return code


if __name__ == "__main__":
    sys.exit(main())
