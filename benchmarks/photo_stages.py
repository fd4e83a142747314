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

from common import degraded_picture, photo_held_out, y_psnr
from superres.evaluation.metrics import psnr
from superres.imaging.resize import imresize
from superres.inference.denoise import PhotoPair
from superres.inference.warm import WARM
from superres.models import load_model

KINDS = ["clean", "jpeg:90", "jpeg:75", "jpeg:50", "noise:10", "camera", "web", "lens", "real"]


def auto_gains(pairs: dict[str, PhotoPair], hr: np.ndarray, scale: int, kind: str) -> dict[str, float]:
    """{name: Y-PSNR of the pair's auto minus that of bicubic}, for one image degraded once (seed 0) by `kind`."""
    d, picture = degraded_picture(hr, scale, kind)
    bicubic = psnr(imresize(d.pixels, scale=scale), hr, shave=scale, channel="y")
    return {name: y_psnr(p.at(p.choose(picture).setting), d.pixels, hr, scale) - bicubic for name, p in pairs.items()}


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
    held = photo_held_out(scales)
    for scale in scales:
        for kind in KINDS:
            gains = [auto_gains(pairs, s.hr, scale, kind) for s in held[scale]]
            row = {name: float(np.mean([g[name] for g in gains])) for name in pairs}
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
