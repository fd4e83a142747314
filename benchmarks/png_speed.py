"""PNG encoding: superres's writer (Up filter + ISA-L deflate) against Pillow and OpenCV, time and size.

    python benchmarks/png_speed.py [--size 1280x720]

The image is a photo that ships with scikit-image, tiled to the size; each encoder's best of 5 runs.
"""

from __future__ import annotations

import argparse
import io
import sys

import cv2
import numpy as np
from PIL import Image

from common import best_time, photo
from superres.imaging.png import encode_png


def pillow(img: np.ndarray, level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    img = photo(h, w)
    encoders = {
        "superres (Up + ISA-L 1)": lambda: encode_png(img),
        "Pillow, zlib level 1": lambda: pillow(img, 1),
        "Pillow, zlib level 6": lambda: pillow(img, 6),
        "OpenCV, zlib level 1": lambda: cv2.imencode(".png", img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[
            1
        ].tobytes(),
    }
    print(f"{w}x{h} RGB photo, {img.nbytes / 1e6:.1f} MB raw")
    for name, fn in encoders.items():
        seconds, size = best_time(fn, repeat=5), len(fn())
        print(f"{name:<26} {seconds * 1e3:7.1f} ms  {size / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
