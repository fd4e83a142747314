"""Where the chain detector's cut-off (imaging.damage.CHAIN_AT) comes from: on the 12 held-out training images,
degraded whole once (seed 0) by each kind of training.damage (and `soft`) at x2, x3 and x4, the detector's
chance, and for each picture it reads at the lowest candidate cut-off or above, the Y-PSNR of the photo model
at what auto reads without the detector and at (1, 1). For each candidate cut-off it prints what auto would gain
per kind (mean over the pictures of that kind, dB) by telling (1, 1) to every picture at or above it, and how
many pictures that is. The cut-off (CHAIN_AT) is the lowest step above every picture outside the chain, here
and in benchmarks/chain_safety.py; this table shows what that gives up.

    python benchmarks/chain_cutoff.py [--json docs/results/chain-cutoff.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import degraded_picture, photo_held_out, y_psnr
from superres.imaging.damage import bundled_chain_net, chain_chance
from superres.inference.denoise import PhotoPair
from superres.training.damage import KINDS

CUTOFFS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
SCALES = (2, 3, 4)


def main(json_path: Path | None) -> int:
    pair = PhotoPair.bundled()
    assert pair is not None and bundled_chain_net() is not None, "the bundled default has a photo model and a detector"
    held = photo_held_out(list(SCALES))
    rows = []
    for scale in SCALES:
        for kind in (*KINDS, "soft"):
            for sample in held[scale]:
                _, picture = degraded_picture(sample.hr, scale, kind)
                pixels = picture.pixels
                chance = chain_chance(pixels) or 0.0  # a picture smaller than a crop is not read
                row: dict = {"scale": scale, "kind": kind, "image": sample.name, "chance": round(chance, 3)}
                if chance >= CUTOFFS[0]:
                    auto = pair.at(pair.choose(picture).setting)
                    row["psnr_reading"] = y_psnr(auto, pixels, sample.hr, scale)
                    row["psnr_chain"] = y_psnr(pair.at((1.0, 1.0)), pixels, sample.hr, scale)
                rows.append(row)
    table = {}
    for scale in SCALES:
        for kind in (*KINDS, "soft"):
            mine = [r for r in rows if r["scale"] == scale and r["kind"] == kind]
            cells = []
            for cut in CUTOFFS:
                told = [r for r in mine if r["chance"] >= cut]
                gain = sum(r["psnr_chain"] - r["psnr_reading"] for r in told) / len(mine)
                cells.append((round(gain, 3), len(told)))
            table[f"x{scale} {kind}"] = cells
    print("kind          " + "".join(f"{c:>13}" for c in CUTOFFS))
    for key, cells in table.items():
        print(f"{key:<14}" + "".join(f"{g:>+9.3f} ({n:>2})" for g, n in cells))
    if json_path is not None:
        json_path.write_text(json.dumps({"cutoffs": CUTOFFS, "gain_and_count": table, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the table and every picture's readings here")
    args = parser.parse_args()
    raise SystemExit(main(args.json))
