"""Flicker: does a per-frame network shimmer where the picture stands still?

A clip is made here: a still photo (scikit-image's astronaut, 320x180) with a small square moving across
it and a little sensor noise (Gaussian, sigma --noise, new in every frame), encoded with H.264 at CRF 23
as a camera or a download would be; 48 frames at 24 fps. It is upscaled x2 by bicubic and by the bundled
default at several --denoise settings, each written losslessly (FFV1, 4:4:4) so that only the upscaling
is measured. Flicker = the mean absolute difference of luma (0-255) between consecutive output frames,
over the pixels the moving square never reaches. Printed per method, and as a ratio to bicubic's.

    python benchmarks/video_flicker.py [--noise 2] [--frames 48]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from common import photo
from superres.api import ImageUpscaler
from superres.imaging.video import VideoReader
from superres.inference.video import upscale_video

H, W, SQUARE = 180, 320, 24


def make_clip(path: Path, frames: int, noise: float) -> np.ndarray:
    """Write the clip; return the mask (H, W) of LR pixels the square never covers."""
    rng = np.random.default_rng(0)
    still = photo(H, W).astype(np.float32)
    moving = np.zeros((H, W), bool)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.time_base = Fraction(1, 24)
        v.codec_context.options = {"crf": "23"}
        for i in range(frames):
            img = still + rng.normal(0, noise, still.shape).astype(np.float32)
            x = 8 + (W - SQUARE - 16) * i // max(frames - 1, 1)
            y = H // 2 - SQUARE // 2
            img[y : y + SQUARE, x : x + SQUARE] = (230, 40, 40)
            moving[y : y + SQUARE, x : x + SQUARE] = True
            frame = av.VideoFrame.from_ndarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
    grown = moving.copy()  # keep clear of the square's edges, where the codec's blocks smear it
    for dy in range(-8, 9):
        for dx in range(-8, 9):
            grown |= np.roll(np.roll(moving, dy, 0), dx, 1)
    return ~grown


def flicker(path: Path, still: np.ndarray) -> float:
    """Mean |Y_t - Y_t-1| over the still pixels (an (h, w) mask at the video's size)."""
    with VideoReader(path) as reader:
        frames = [f.pixels for f in reader.items()]
    luma = [f.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) for f in frames]
    return float(np.mean([np.abs(b - a)[still].mean() for a, b in itertools.pairwise(luma)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise sigma in gray levels (default 2)")
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="superres-flicker-"))
    clip = tmp / "clip.mp4"
    still = make_clip(clip, args.frames, args.noise)
    still_hr = still.repeat(2, 0).repeat(2, 1)
    methods = {
        "bicubic": dict(method="bicubic", scale=2),
        "model (denoise 0)": dict(scale=2, denoise=0),
        "model, denoise auto": dict(scale=2, denoise="auto"),
        "model, denoise 0.5": dict(scale=2, denoise=0.5),
        "model, denoise 1": dict(scale=2, denoise=1),
    }
    print(
        f"clip: {W}x{H}, {args.frames} frames, a still photo with a moving square, sensor noise sigma "
        f"{args.noise:g}, H.264 CRF 23; upscaled x2, written as FFV1 4:4:4; flicker on the still pixels"
    )
    print(f"input (LR) flicker: {flicker(clip, still):.3f}")
    print(f"{'method':<22} {'flicker':>8} {'vs bicubic':>11} {'frames/s':>9}  denoise chosen")
    reference = None
    for name, options in methods.items():
        out = tmp / f"{name.replace(' ', '_').replace(',', '')}.mkv"
        t0 = time.perf_counter()
        result = upscale_video(clip, out, ImageUpscaler(**options), codec="ffv1", pix_fmt="yuv444p")
        fps = result.frames / (time.perf_counter() - t0)
        value = flicker(out, still_hr)
        reference = reference or value
        print(f"{name:<22} {value:>8.3f} {value / reference:>10.2f}x {fps:>9.1f}  {result.denoise.describe()}")


if __name__ == "__main__":
    main()
