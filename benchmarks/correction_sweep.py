"""Choose the correction threshold (TAU) on held-out training images, never on the benchmark sets.

For each model, the mean Y-PSNR of model and of model + correction at each threshold, on the images the
training runs hold out of T91 + BSD200 (training.split_holdout, the same 10 images). Two models span the
range of quality: an undertrained one like the original report's (edsr-small after 40 steps, worse than
bilinear, trained here in seconds) and a good one (the bundled default, or --model). The chosen TAU is
the smallest threshold that costs the good model at most 0.1 dB: it rescues as much of the undertrained
model as it can while leaving a good model nearly untouched.

    python benchmarks/correction_sweep.py [--data ../shared/data/train/T91 ../shared/data/train/BSD200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from superres.evaluation.metrics import psnr
from superres.imaging.datasets import find_dataset, load_samples
from superres.imaging.io import Picture
from superres.imaging.resize import imresize
from superres.inference.correction import correct
from superres.inference.upscaler import Upscaler, upscale_picture
from superres.models.checkpoints import load_model
from superres.training.config import TrainConfig, split_holdout
from superres.training.loop import train

THRESHOLDS = [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 128, 255]
MAX_COST = 0.1  # dB the good model may lose


def undertrained(data: list[str], scale: int, folder: Path) -> Path:
    cfg = TrainConfig(
        data=data,
        scale=scale,
        preset="edsr-small",
        iters=40,
        lr=5e-4,
        val_every=40,
        checkpoint_every=40,
        out=str(folder / "run"),
        holdout=10,
        seed=1,
    )
    train(cfg, progress=False)
    return folder / "run" / "best.safetensors"


def main() -> int:
    shared = Path(__file__).resolve().parents[1].parent / "shared/data/train"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[str(shared / "T91"), str(shared / "BSD200")])
    parser.add_argument("--model", default=None, help="the good model (default: the bundled x2 model)")
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args()
    paths = [(d, p) for d in args.data for p in find_dataset(d).hr_paths()]
    _, held_out = split_holdout(paths, 10)  # the same 10 images the training runs hold out
    pairs = [s for d, p in held_out for s in load_samples(find_dataset(d), args.scale, 3, [p])]
    with tempfile.TemporaryDirectory() as tmp:
        models = {"undertrained": load_model(undertrained(args.data, args.scale, Path(tmp)))}
    models["good"] = load_model(args.model, scale=args.scale)
    table: dict[str, list[float]] = {}
    for name, model in models.items():
        runner = Upscaler(model, args.scale, device="cpu", precision="fp32")  # the threshold is chosen on fp32 outputs
        outputs = [upscale_picture(Picture(p.lr), args.scale, model=runner).pixels for p in pairs]
        base = float(np.mean([psnr(sr, p.hr, shave=args.scale) for sr, p in zip(outputs, pairs, strict=True)]))
        gains = []
        for tau in THRESHOLDS:
            scores = [
                psnr(correct(sr, threshold=tau, lr=p.lr), p.hr, shave=args.scale)
                for sr, p in zip(outputs, pairs, strict=True)
            ]
            gains.append(float(np.mean(scores)) - base)
        table[name] = [base, *gains]
    print(f"held-out images: {', '.join(p.stem for _, p in held_out)}; x{args.scale}, Y-PSNR, shave {args.scale}")
    print(f"{'model':<14} {'alone':>7} " + " ".join(f"{t:>6}" for t in THRESHOLDS))
    for name, row in table.items():
        print(f"{name:<14} {row[0]:>7.2f} " + " ".join(f"{g:>+6.2f}" for g in row[1:]))
    bilinear = float(
        np.mean([psnr(imresize(p.lr, args.scale, method="bilinear"), p.hr, shave=args.scale) for p in pairs])
    )
    print(f"{'bilinear':<14} {bilinear:>7.2f}")
    good = table["good"][1:]
    chosen = next(t for t, g in zip(THRESHOLDS, good, strict=True) if g >= -MAX_COST)
    k = THRESHOLDS.index(chosen)
    print(
        f"chosen threshold: {chosen} (smallest costing the good model <= {MAX_COST} dB: {good[k]:+.3f} dB; "
        f"undertrained model {table['undertrained'][1 + k]:+.3f} dB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
