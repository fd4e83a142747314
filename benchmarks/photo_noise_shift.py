"""How much noise `--denoise auto` should tell the photo model it reads, fitted on the photo model's 12 held-out
training images (never a benchmark set): for each kind of damage and each image, the Y-PSNR of the photo model
told auto's jpeg part and, for the noise part, the reading less a shift (the noise reading after its clean
floor, `imaging.damage.pixel_readings`; `cut` is the rule before this script: a reading below NOISE_CLEAN_BELOW
counts as 0, the rest is told as read). photo_frontier.py found white noise best told at less than its damage
(the photo model's first two stages).

    python benchmarks/photo_noise_shift.py [--json docs/results/photo-noise-shift.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import degraded_picture, photo_held_out, y_psnr
from superres.imaging.damage import NOISE_CLEAN_BELOW, estimate_damage, noise_damage
from superres.inference.denoise import PhotoPair, to_step

KINDS = ("clean", "web", "camera", "lens", "real", "jpeg:75", "jpeg:50", "noise:5", "noise:10", "noise:15")
SHIFTS = ("cut", 0.05, 0.10, 0.13, 0.16, 0.20, 0.25)


def told(reading: float, shift: str | float) -> float:
    if shift == "cut":
        return reading if reading >= NOISE_CLEAN_BELOW else 0.0
    return max(0.0, reading - float(shift))


def main(out: str | None) -> int:
    pair = PhotoPair.bundled()
    assert pair is not None and pair.conditioned, "the default's photo model is a conditioned one"
    held = photo_held_out([2, 4])
    report: dict = {}
    for scale in (2, 4):
        report[f"x{scale}"] = {}
        print(f"x{scale}: mean Y-PSNR per kind and shift")
        print("| kind | " + " | ".join(str(s) for s in SHIFTS) + " |")
        print("|---|" + "---|" * len(SHIFTS))
        for kind in KINDS:
            scores = {s: [] for s in SHIFTS}
            for sample in held[scale]:
                d, picture = degraded_picture(sample.hr, scale, kind)
                jpeg, _, sigma, _ = estimate_damage(picture.pixels, picture.jpeg_quality)
                reading = noise_damage(sigma)
                scored: dict[tuple[float, float], float] = {}  # shifts that give the same setting run it once
                for shift in SHIFTS:
                    setting = (to_step(jpeg), to_step(told(reading, shift)))
                    if setting not in scored:
                        scored[setting] = y_psnr(pair.at(setting), d.pixels, sample.hr, scale)
                    scores[shift].append(scored[setting])
            means = {str(s): round(float(np.mean(v)), 4) for s, v in scores.items()}
            report[f"x{scale}"][kind] = means
            print(f"| {kind} | " + " | ".join(f"{v:.3f}" for v in means.values()) + " |")
        overall = {str(s): round(float(np.mean([report[f"x{scale}"][k][str(s)] for k in KINDS])), 4) for s in SHIFTS}
        report[f"x{scale}"]["mean of kinds"] = overall
        print("| mean of kinds | " + " | ".join(f"{v:.3f}" for v in overall.values()) + " |")
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="write the means here")
    raise SystemExit(main(parser.parse_args().json))
