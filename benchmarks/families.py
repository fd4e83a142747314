"""Every published checkpoint in ../shared/models through superres (issue 21): loaded by detection alone, its
Set5 Y-PSNR in fp32 and bf16 against the published figure, its speed through `superres.upscale` against a bare
forward of the same network, and, for families without an exact receptive radius, the error of approximate
tiles against the untiled output.

    python benchmarks/families.py                      # every file; prints three markdown tables
    python benchmarks/families.py --files rlfn_x4.safetensors --skip-speed

Set5 is scored as `superres eval` scores it (Y of BT.601, border of `scale` shaved, MATLAB-bicubic LR files).
Speed: best of 3 on a 320x180 LR crop of scikit-image's astronaut, fp32, one tile, on this machine's CPU.
Tiling: the same crop at 200x120 LR, tiles of 48 LR pixels with the default margin (APPROXIMATE_MARGIN).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

import superres
from common import best_time, photo
from superres.evaluation.benchmark import EvalConfig, evaluate
from superres.evaluation.metrics import psnr
from superres.inference.upscaler import APPROXIMATE_MARGIN, Upscaler
from superres.models import load_model

ROOT = Path(__file__).resolve().parents[1]


def set5(path: Path, scale: int, precision: str, data: Path) -> float:
    config = EvalConfig(
        datasets=[str(data / "Set5")], scales=[scale], methods=[str(path)], precision=precision, device="cpu"
    )
    (row,) = [r for r in evaluate(config).results if r["channel"] == "y"]
    return float(row["psnr"])


def published(row: dict[str, str], column: str) -> dict[int, float]:
    cells = [item.split("=") for item in row[column].split(";") if "=" in item]
    return {int(k.lstrip("x")): float(v) for k, v in cells}


def quality_rows(rows: list[dict[str, str]], models: Path, data: Path) -> list[str]:
    out = ["| file | family (detected) | params | scale | Set5 fp32 | bf16 - fp32 | published | measured (manifest) |"]
    out.append("|---|---|---|---|---|---|---|---|")
    for row in rows:
        path = models / row["file"]
        handle = load_model(path)
        pub, measured = published(row, "published_set5"), published(row, "measured_set5")
        for scale in handle.scales:
            fp32 = set5(path, scale, "fp32", data)
            bf16 = set5(path, scale, "bf16", data)
            shown = f"{pub[scale]:.2f}" if scale in pub else "-"
            out.append(
                f"| {row['file']} | {handle.arch} | {handle.parameter_count:,} | x{scale} | {fp32:.2f} | "
                f"{bf16 - fp32:+.3f} | {shown} | {measured.get(scale, float('nan')):.2f} |"
            )
            print(out[-1], file=sys.stderr, flush=True)
    return out


def speed_rows(rows: list[dict[str, str]], models: Path) -> list[str]:
    out = ["| file | scale | bare forward (s) | superres.upscale (s) | ratio |", "|---|---|---|---|---|"]
    img = photo(180, 320)
    for row in rows:
        handle = load_model(models / row["file"])
        scale = handle.scales[-1]
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() * (handle.pixel_range / 255)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            bare = best_time(lambda h=handle, x=x, s=scale: h.run(x, s))
        ours = best_time(
            lambda h=handle, s=scale: superres.upscale(img, s, model=h, precision="fp32", tile=0, denoise=None)
        )
        out.append(f"| {row['file']} | x{scale} | {bare:.3f} | {ours:.3f} | {ours / bare:.2f} |")
        print(out[-1], file=sys.stderr, flush=True)
    return out


def tiling_rows(rows: list[dict[str, str]], models: Path) -> list[str]:
    out = [
        "| file | scale | max difference (gray levels) | PSNR tiled vs whole (dB) | margin |",
        "|---|---|---|---|---|",
    ]
    img = photo(120, 200).astype(np.float32)
    for row in rows:
        handle = load_model(models / row["file"])
        scale = handle.scales[-1]
        if handle.receptive_radius(scale) is not None:
            continue  # exact tiles: the tests check them
        whole = Upscaler(handle, scale, device="cpu", precision="fp32", tile=0)(img)
        tiled = Upscaler(handle, scale, device="cpu", precision="fp32", tile=48)(img)
        a, b = (np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8) for v in (whole, tiled))
        diff = int(np.abs(a.astype(int) - b).max())
        out.append(f"| {row['file']} | x{scale} | {diff} | {psnr(b, a):.2f} | {APPROXIMATE_MARGIN} |")
        print(out[-1], file=sys.stderr, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "benchmark")
    parser.add_argument("--files", nargs="*", help="only these files of the manifest")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-tiling", action="store_true")
    args = parser.parse_args()
    with open(args.models / "MANIFEST.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if not args.files or r["file"] in args.files]
    rows = [r for r in rows if not r["file"].endswith(".pth")]  # the .pth originals hold the same tensors
    tables = []
    if not args.skip_quality:
        tables.append(quality_rows(rows, args.models, args.data))
    if not args.skip_speed:
        tables.append(speed_rows(rows, args.models))
    if not args.skip_tiling:
        tables.append(tiling_rows(rows, args.models))
    print("\n\n".join("\n".join(t) for t in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
