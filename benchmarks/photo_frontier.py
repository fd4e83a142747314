"""Where the conditioned photo model is best, on the photo model's 12 held-out training images at x2: for each kind
of damage, the photo model specialised along one axis of its condition (JPEG: (j, 0); noise: (0, n)), the setting
that scores best per image, against the damage the degradation really did and the setting `--denoise auto` reads.
This is for calibrating auto on images held out of training, never on a benchmark set.

    python benchmarks/photo_frontier.py [--json docs/results/photo-frontier.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import degraded_picture, photo_held_out, y_psnr
from superres.inference.denoise import PhotoPair

KINDS = {
    "jpeg:90": 0,
    "jpeg:75": 0,
    "jpeg:50": 0,
    "noise:5": 1,
    "noise:10": 1,
    "noise:15": 1,
    "camera": 1,
}  # kind -> the axis varied
GRID = [round(0.05 * k, 2) for k in range(0, 17)]  # 0 .. 0.8


def main(out: str | None) -> int:
    pair = PhotoPair.bundled()
    assert pair is not None and pair.conditioned, "the default's photo model is a conditioned one"
    held = photo_held_out([2])
    report = {}
    print("| kind | true damage | auto's setting | best setting | Y-PSNR at auto | at best | at the true damage |")
    print("|---|---|---|---|---|---|---|")
    for kind, axis in KINDS.items():
        rows = []
        for s in held[2]:
            d, picture = degraded_picture(s.hr, 2, kind)
            auto = pair.choose(picture).condition
            assert auto is not None
            scores = {}
            for v in GRID:
                setting = (v, 0.0) if axis == 0 else (0.0, v)
                scores[v] = y_psnr(pair.at(setting), d.pixels, s.hr, 2)
            best = max(scores, key=lambda v: scores[v])
            true = round(round(d.condition[axis] / 0.05) * 0.05, 2)
            at_auto = auto[axis] if auto[1 - axis] == 0 else None
            rows.append(
                (
                    d.condition[axis],
                    auto[axis],
                    best,
                    scores.get(at_auto, float("nan")),
                    scores[best],
                    scores[min(true, GRID[-1])],
                )
            )
        r = np.array(rows, dtype=np.float64)
        report[kind] = dict(
            zip(
                ("true", "auto", "best", "psnr_auto", "psnr_best", "psnr_true"),
                np.nanmean(r, axis=0).round(3).tolist(),
                strict=True,
            )
        )
        e = report[kind]
        cells = [e["true"], e["auto"], e["best"], e["psnr_auto"], e["psnr_best"], e["psnr_true"]]
        print(f"| {kind} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="write the means per kind here")
    raise SystemExit(main(parser.parse_args().json))
