"""Photo models side by side on images held out of their training: for each kind of damage, the gain in Y-PSNR of
`--denoise auto` over bicubic on the same degraded LR, on the 12 training images the photo model's runs held out
(each degraded whole once, seed 0). This is how a new stage of the photo model is compared with the bundled one
before any benchmark set is run.

    python benchmarks/photo_stages.py [FILE.safetensors ...] [--scale 2,4] [--json out.json]

Each FILE is a conditioned photo model (e.g. a run's best.safetensors); it is paired with the bundled clean
default, as the bundled photo model is. Without FILEs only the bundled photo model is scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from superres.evaluation.metrics import psnr
from superres.imaging.degrade import degrade
from superres.imaging.io import Picture
from superres.imaging.quality import jpeg_file_quality
from superres.imaging.resize import imresize
from superres.inference.denoise import PhotoPair
from superres.inference.upscaler import Upscaler
from superres.inference.warm import WARM
from superres.models import load_model
from superres.training.config import TrainConfig
from superres.training.loop import load_training_data

DATA = ["../shared/data/train/T91", "../shared/data/train/BSD200", "../shared/data/train/BSDS500-test"]
KINDS = ["clean", "jpeg:90", "jpeg:75", "jpeg:50", "noise:10", "camera", "web", "lens", "real"]


def auto_gain(pair: PhotoPair, hr: np.ndarray, scale: int, kind: str) -> float:
    """Y-PSNR of auto minus that of bicubic, for one image degraded once (seed 0) by `kind`."""
    d = degrade(hr, scale, kind, seed=0)
    quality = None if d.jpeg is None else jpeg_file_quality(d.jpeg)
    net = pair.at(pair.choose(Picture(d.pixels, jpeg_quality=quality)).setting)
    sr = Upscaler(net, scale, device="cpu", precision="fp32", backend="torch")(d.pixels.astype(np.float32))
    bicubic = imresize(d.pixels, scale=scale)
    return psnr(sr, hr, shave=scale, channel="y") - psnr(bicubic, hr, shave=scale, channel="y")


def main(files: list[str], scales: list[int], out: str | None) -> int:
    bundled = PhotoPair.bundled()
    assert bundled is not None and bundled.conditioned, "the default's photo model is a conditioned one"
    pairs = {"bundled": bundled} if not files else {}
    clean = WARM.load(None)
    for f in files:
        pairs[f] = PhotoPair(clean, load_model(f))
    report: dict = {}
    print("| scale | kind | " + " | ".join(pairs) + " |")
    print("|---|---|" + "---|" * len(pairs))
    for scale in scales:
        _, held = load_training_data(TrainConfig(data=DATA, scale=[scale], holdout=12))
        for kind in KINDS:
            row = {
                name: float(np.mean([auto_gain(p, s.hr, scale, kind) for s in held[scale]]))
                for name, p in pairs.items()
            }
            report.setdefault(f"x{scale}", {})[kind] = {k: round(v, 3) for k, v in row.items()}
            print(f"| x{scale} | {kind} | " + " | ".join(f"{v:+.3f}" for v in row.values()) + " |", flush=True)
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="conditioned photo models (default: the bundled one)")
    parser.add_argument("--scale", default="2", help="comma-separated factors (default 2)")
    parser.add_argument("--json", default=None, help="write the gains here")
    args = parser.parse_args()
    raise SystemExit(main(args.files, [int(s) for s in args.scale.split(",")], args.json))
