"""Print the photo model's tables from benchmarks/photo_targets.sh's JSON files: at x2 each degradation's gain over
bicubic against issue 25's targets and what auto loses against the best fixed strength per image; at x3 the gains;
at x4 every method's Y-PSNR, SSIM and time per image on each degradation; with --damage, the damage estimator's
errors (`python -m superres.training.damage ... --weights src/superres/weights/damage.safetensors`).

    python benchmarks/photo_table.py docs/results/photo-x2.json docs/results/photo-x3.json docs/results/photo-x4.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

TARGETS = {"clean": 2.27, "jpeg:75": 1.2, "jpeg:50": 1.0, "noise:10": 1.5, "real": 0.8}  # issue 25, B100 x2
FIXED = ("model", *(f"denoise={s / 10:.1f}" for s in range(1, 10)), "photo")  # strengths 0, 0.1, ..., 1


def short(method: str) -> str:
    """A weights path as its file's stem (span_x4_ch48), a method name as it is."""
    return Path(method).stem if "/" in method else method


def x2_table(data: dict) -> None:
    y = [r for r in data["results"] if r["channel"] == "y"]
    psnr = {(r["degradation"], r["method"]): r["psnr"] for r in y}
    per_image: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in data["per_image"]:
        if r["channel"] == "y":
            per_image[(r["degradation"], r["image"])][r["method"]] = r["psnr"]
    print("\nx2 (Y-PSNR dB against the clean HR; gain = auto - bicubic, the target in brackets; auto's loss = the")
    print("best fixed strength per image (0, 0.1, ..., 1) - auto, averaged over the images)\n")
    print("| input | bicubic | model | photo | auto | gain (target) | auto's loss to the best fixed strength |")
    print("|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["degradation"] for r in y):
        gain = psnr[(kind, "auto")] - psnr[(kind, "bicubic")]
        met = "met" if gain >= TARGETS.get(kind, float("-inf")) else "missed"
        losses = [
            max(scores[m] for m in FIXED if m in scores) - scores["auto"]
            for (k, _), scores in per_image.items()
            if k == kind and "auto" in scores
        ]
        loss = sum(losses) / len(losses)
        cells = " | ".join(f"{psnr[(kind, m)]:.2f}" for m in ("bicubic", "model", "photo", "auto"))
        print(f"| {kind} | {cells} | {gain:+.2f} ({TARGETS.get(kind, 0):+.2f}, {met}) | {loss:.3f} |")


def x4_table(data: dict) -> None:
    y = [r for r in data["results"] if r["channel"] == "y"]
    methods = list(dict.fromkeys(r["method"] for r in y))
    kinds = list(dict.fromkeys(r["degradation"] for r in y))
    by = {(r["degradation"], r["method"]): r for r in y}
    print("\nx4 (Y-PSNR dB / SSIM against the clean HR; seconds per image in the header, from the clean run)\n")
    header = [f"{short(m)} ({by[(kinds[0], m)]['seconds_per_image']:.2f} s)" for m in methods]
    print("| input | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(methods))
    for kind in kinds:
        best = max(by[(kind, m)]["psnr"] for m in methods)
        cells = []
        for m in methods:
            r = by[(kind, m)]
            text = f"{r['psnr']:.2f} / {r['ssim']:.3f}"
            cells.append(f"**{text}**" if r["psnr"] == best else text)
        print(f"| {kind} | " + " | ".join(cells) + " |")
    real_world = [m for m in methods if "realesr" in short(m).lower()]  # Real-ESRGAN's, trained on degradations
    clean_models = [m for m in methods if "/" in m and m not in real_world]
    general = [m for m in real_world if "general" in short(m)]
    for title, group in (("the best clean model of ../shared/models", clean_models), ("realesr-general", general)):
        if not group or "auto" not in methods:
            continue
        print(f"\nauto - {title} (x4):")
        for kind in kinds:
            top = max(group, key=lambda m: by[(kind, m)]["psnr"])
            print(f"  {kind}: {by[(kind, 'auto')]['psnr'] - by[(kind, top)]['psnr']:+.2f} dB (best: {short(top)})")


def x3_table(data: dict) -> None:
    y = [r for r in data["results"] if r["channel"] == "y"]
    psnr = {(r["degradation"], r["method"]): r["psnr"] for r in y}
    print("\nx3 (Y-PSNR dB against the clean HR; gain = auto - bicubic)\n")
    print("| input | bicubic | model | photo | auto | gain |")
    print("|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["degradation"] for r in y):
        cells = " | ".join(f"{psnr[(kind, m)]:.2f}" for m in ("bicubic", "model", "photo", "auto"))
        print(f"| {kind} | {cells} | {psnr[(kind, 'auto')] - psnr[(kind, 'bicubic')]:+.2f} |")


def damage_table(data: dict) -> None:
    print("\nThe damage estimator on the held-out images at x2 (mean absolute error; quality in JPEG quality units,")
    print("sigma in gray levels; pixels only, no file's tables)\n")
    print("| input | quality (network) | sigma (as used) | sigma (hand-made alone) | sigma (network) | mean reading |")
    print("|---|---|---|---|---|---|")
    for kind, e in data["mae_at_x2"].items():
        cells = [e["quality"], e["sigma"], e["sigma_handmade"], e["sigma_net"], e["reading"]]
        print(f"| {kind} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")


def main(x2: str, x3: str | None, x4: str | None, damage: str | None = None) -> int:
    if damage:
        damage_table(json.loads(Path(damage).read_text()))
    x2_table(json.loads(Path(x2).read_text()))
    if x3:
        x3_table(json.loads(Path(x3).read_text()))
    if x4:
        x4_table(json.loads(Path(x4).read_text()))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("x2", help="photo-x2.json")
    parser.add_argument("x3", nargs="?", help="photo-x3.json")
    parser.add_argument("x4", nargs="?", help="photo-x4.json")
    parser.add_argument("--damage", help="the estimator's report (docs/results/damage.json)")
    args = parser.parse_args()
    raise SystemExit(main(args.x2, args.x3, args.x4, args.damage))
