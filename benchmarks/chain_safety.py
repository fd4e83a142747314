"""The chain detector (imaging.damage.chain_chance) on pictures unlike its training crops: scikit-image's photos
and scans (camera-resolution photos, micrographs, astronomy, text), each as it is, at half size (area) and as a
128-pixel crop of its middle (the size of crop that fooled an earlier detector), and each of those saved as a
JPEG of quality 95, 75, 50 and 35. None of them went through Real-ESRGAN's chain, so
every one read at CHAIN_AT or above is a false alarm, and the photo model then runs at its strongest setting.
For a half-size picture read at LOOK_FROM or above the full-size picture is the truth: the x2 Y-PSNR of auto
without the detector and at (1, 1) says what an alarm there costs (or would cost, at a lower cut-off). Prints
the chances per picture and variant, sorted from the highest.

    python benchmarks/chain_safety.py [--json docs/results/chain-safety.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from common import y_psnr
from superres.imaging.damage import CHAIN_AT, chain_chance
from superres.imaging.degrade import jpeg
from superres.imaging.io import Picture
from superres.inference.denoise import PhotoPair

PICTURES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "coins",
    "moon",
    "page",
    "brick",
    "grass",
    "gravel",
    "text",
    "clock",
    "cell",
)
QUALITIES = (None, 95, 75, 50, 35)  # None: the pixels as they are
LOOK_FROM = 0.5  # the chance from which an alarm's cost is measured


def variants(name: str) -> list[tuple[str, np.ndarray, np.ndarray | None, int | None]]:
    """(label, pixels (H, W, 3) uint8, the full-size truth for a half-size variant or None, JPEG quality)."""
    from skimage import data

    full = getattr(data, name)()
    full = np.repeat(full[..., None], 3, axis=2) if full.ndim == 2 else full[..., :3]
    h, w = full.shape[0] // 2 * 2, full.shape[1] // 2 * 2
    full = np.ascontiguousarray(full[:h, :w])
    half = np.asarray(Image.fromarray(full).resize((w // 2, h // 2), Image.Resampling.BOX))
    y, x = max(0, h // 2 - 64), max(0, w // 2 - 64)
    crop = np.ascontiguousarray(full[y : y + 128, x : x + 128])
    out = []
    for size, pixels, truth in (("full", full, None), ("half", half, full), ("crop", crop, None)):
        for q in QUALITIES:
            if q is None:
                out.append((f"{name} {size} png", pixels, truth, None))
                continue
            out.append((f"{name} {size} q{q}", jpeg(pixels, q)[0], truth, q))
    return out


def main(json_path: Path | None) -> int:
    pair = PhotoPair.bundled()
    assert pair is not None, "the bundled default has a photo model"
    rows = []
    for name in PICTURES:
        for label, pixels, truth, quality in variants(name):
            chance = chain_chance(pixels)
            assert chance is not None, "no chain detector is bundled"
            row: dict = {"picture": label, "chance": round(chance, 3)}
            if chance >= LOOK_FROM and truth is not None:
                auto = pair.choose(Picture(pixels, jpeg_quality=quality)).setting
                row["psnr_without"] = round(y_psnr(pair.at(auto), pixels, truth, 2), 2)
                row["psnr_with"] = round(y_psnr(pair.at((1.0, 1.0)), pixels, truth, 2), 2)
            rows.append(row)
    rows.sort(key=lambda r: -r["chance"])
    alarms = [r for r in rows if r["chance"] >= CHAIN_AT]
    for r in rows[:20]:
        cost = f"  x2 Y-PSNR {r['psnr_without']:.2f} -> {r['psnr_with']:.2f}" if "psnr_with" in r else ""
        print(f"{r['picture']:<32} {r['chance']:.3f}{cost}")
    print(f"{len(alarms)} of {len(rows)} pictures read as the chain (chance >= {CHAIN_AT})")
    if json_path is not None:
        json_path.write_text(json.dumps({"chain_at": CHAIN_AT, "false_alarms": len(alarms), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the chances here")
    args = parser.parse_args()
    raise SystemExit(main(args.json))
