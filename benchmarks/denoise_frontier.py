"""The denoise frontier on held-out training images: Y-PSNR of the clean/photo blend at each strength, for
JPEG qualities and noise levels, and the `--denoise auto` ramps fitted to the best strengths.

The images are the ones the photo model's run held out (its config.json: data folders and holdout); the
benchmark sets are never read. Each LR is the degradation of the HR with seed 0, as `eval --degrade`.

    python benchmarks/denoise_frontier.py --run runs/photo --scale 2 --json docs/results/denoise-frontier.json
    python benchmarks/denoise_frontier.py --run runs/photo --photo runs/photo/best.safetensors  # before bundling
    python benchmarks/denoise_frontier.py --run runs/photo --fit docs/results/denoise-frontier-{jpeg,noise}.json
        # only the ramps, then the table of gains at the best, full and auto strengths

The noise ramp is kept from hurting clean photos: its expected loss on the clean row, over the noise
readings of every training image's clean LR (texture reads as some noise), must stay within --budget dB (0.01).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from superres.evaluation.benchmark import Method, run_method
from superres.evaluation.metrics import psnr
from superres.imaging.datasets import find_dataset, to_colors
from superres.imaging.degrade import degrade
from superres.imaging.io import read_image
from superres.imaging.quality import jpeg_file_quality, noise_sigma
from superres.inference.denoise import PhotoPair
from superres.models.checkpoints import load_model
from superres.training.config import split_holdout

JPEG = [95, 90, 85, 80, 75, 70, 65, 60, 50, 40, 30]
NOISE = [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20]
STRENGTHS = [round(0.1 * k, 1) for k in range(11)]


def held_out_images(run: Path) -> list[tuple[str, np.ndarray]]:
    cfg = json.loads((run / "config.json").read_text())
    paths = [p for folder in cfg["data"] for p in find_dataset(folder, split="train").hr_paths()]
    _, held = split_holdout(paths, cfg["holdout"])
    return [(p.stem, to_colors(read_image(p).pixels, 3)) for p in held]


def _curve(row: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.array([float(k) for k in row["psnr_by_strength"]]), np.array(list(row["psnr_by_strength"].values()))


def ramp(x, zero: float, one: float):
    return np.clip((np.asarray(x, dtype=np.float64) - zero) / (one - zero), 0, 1)


def fit_ramp(
    rows: list[dict],
    key: str,
    grid: np.ndarray,
    increasing: bool = True,
    clean: tuple[dict, np.ndarray] | None = None,
    budget: float = 0.01,
) -> tuple[float, float, float, float]:
    """(zero, one, loss, clean loss): the clipped ramp s = (x - zero) / (one - zero), x = each row's `key`,
    that loses the least mean Y-PSNR against each row's best strength (the PSNR at s read off the row's
    curve, linearly interpolated). With `clean` (the clean row and the noise readings of many clean images),
    only ramps whose expected loss on clean images, over that spread of readings, stays within `budget` dB."""
    curves = [(r[key], *_curve(r)) for r in rows]
    best = (0.0, 1.0, np.inf, 0.0)
    for zero in grid:
        for one in grid[grid > zero] if increasing else grid[grid < zero]:
            clean_loss = 0.0
            if clean is not None:
                xs, ys = _curve(clean[0])
                clean_loss = float(np.mean(ys[0] - np.interp(ramp(clean[1], zero, one), xs, ys)))
                if clean_loss > budget:
                    continue
            loss = float(np.mean([ys.max() - np.interp(ramp(x, zero, one), xs, ys) for x, xs, ys in curves]))
            if loss < best[2]:
                best = (float(zero), float(one), loss, clean_loss)
    return best


def clean_readings(run: Path, scale: int) -> np.ndarray:
    """noise_sigma of the bicubic LR of every image in the run's training folders (held-out ones included):
    how clean photos read, texture and all."""
    cfg = json.loads((run / "config.json").read_text())
    values = []
    for p in (p for folder in cfg["data"] for p in find_dataset(folder, split="train").hr_paths()):
        hr = to_colors(read_image(p).pixels, 3)
        values.append(
            noise_sigma(
                degrade(hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale], scale, "bicubic").pixels
            )
        )
    return np.array(values)


def fit_rows(rows: list[dict], clean: np.ndarray | None = None, budget: float = 0.01) -> dict:
    """Fit the JPEG ramp to the JPEG rows and the noise ramp to the clean and noise rows (where there are
    two or more), print and return the end points. `clean`: noise readings of clean images, which keep the
    noise ramp's expected loss on clean inputs within `budget` dB."""
    fit = {}
    jpeg_rows = [r for r in rows if r["degradation"].startswith("jpeg")]
    noise_rows = [r for r in rows if r["degradation"].startswith(("noise", "clean"))]
    if len(jpeg_rows) >= 2:
        jz, jo, jl, _ = fit_ramp(jpeg_rows, "quality", np.arange(30, 101, 1.0), increasing=False)
        fit.update(JPEG_CLEAN=jz, JPEG_FULL=jo)
        print(
            f"fitted JPEG ramp: JPEG_CLEAN, JPEG_FULL = {jz:g}, {jo:g} (mean loss against the best strength "
            f"{jl:.3f} dB)"
        )
    if len(noise_rows) >= 2:
        guard = None
        if clean is not None:
            guard = (next(r for r in noise_rows if r["degradation"] == "clean"), clean)
            print(
                f"noise readings of {len(clean)} clean training images: median {np.median(clean):.2f}, 90th "
                f"percentile {np.percentile(clean, 90):.2f}, 95th {np.percentile(clean, 95):.2f}"
            )
        nz, no, nl, cl = fit_ramp(noise_rows, "sigma", np.arange(0, 20.01, 0.25), True, guard, budget)
        fit.update(NOISE_CLEAN=nz, NOISE_FULL=no)
        print(
            f"fitted noise ramp: NOISE_CLEAN, NOISE_FULL = {nz:g}, {no:g} (mean loss against the best strength "
            f"{nl:.3f} dB" + ("" if clean is None else f"; expected loss on clean images {cl:.3f} dB") + ")"
        )
    return fit


def print_table(rows: list[dict]) -> None:
    """Each row's best strength and the gain over the clean model at it, at 1 and at the strength the current
    `--denoise auto` ramps (inference/denoise.py) give the row's mean reading, as a markdown table."""
    from superres.inference.denoise import JPEG_CLEAN, JPEG_FULL, NOISE_CLEAN, NOISE_FULL

    print("| input | best strength | gain at best | gain at 1 (photo) | gain at auto's strength |")
    print("|---|---|---|---|---|")
    for r in rows:
        xs, ys = _curve(r)
        s = float(
            ramp(r["quality"], JPEG_CLEAN, JPEG_FULL)
            if r["degradation"].startswith("jpeg")
            else ramp(r["sigma"], NOISE_CLEAN, NOISE_FULL)
        )
        print(
            f"| {r['degradation']} | {r['best_strength']:.1f} | {ys.max() - ys[0]:+.2f} | {ys[-1] - ys[0]:+.2f} | "
            f"{np.interp(s, xs, ys) - ys[0]:+.2f} (S = {s:.2f}) |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="the photo model's run folder (for its held-out images)")
    parser.add_argument("--fit", nargs="+", metavar="JSON", help="only fit the ramps to rows of earlier --json files")
    parser.add_argument("--photo", help="photo weights (default: the bundled photo model)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--cases", help="comma-separated degradations (default: clean, JPEG 95-30, noise 1-20)")
    parser.add_argument("--images", type=int, default=None, help="only the first N held-out images")
    parser.add_argument(
        "--budget",
        type=float,
        default=0.01,
        help="the noise ramp's allowed expected loss on clean photos, dB (default 0.01)",
    )
    parser.add_argument("--strengths", help="comma-separated strengths to score (default 0, 0.1, ..., 1)")
    args = parser.parse_args()
    if args.fit:
        clean = clean_readings(Path(args.run), args.scale) if args.run else None
        rows = [r for path in args.fit for r in json.loads(Path(path).read_text())["rows"]]
        fit_rows(rows, clean, args.budget)
        print_table(rows)
        return 0
    if not args.run:
        parser.error("--run is required")
    pair = PhotoPair(load_model(), load_model(args.photo)) if args.photo else PhotoPair.bundled()
    if pair is None:
        sys.exit("no photo model: give --photo")
    images = held_out_images(Path(args.run))[: args.images]
    s = args.scale
    cases = (
        args.cases.split(",") if args.cases else ["clean"] + [f"jpeg:{q}" for q in JPEG] + [f"noise:{n}" for n in NOISE]
    )
    method = Method("blend", model="blend")
    strengths = [float(v) for v in args.strengths.split(",")] if args.strengths else STRENGTHS
    rows = []
    for case in cases:
        scores = np.zeros((len(images), len(strengths)))
        qualities, sigmas = [], []
        for i, (_name, hr) in enumerate(images):
            hr = hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s]
            lr = degrade(hr, s, "bicubic" if case == "clean" else case, seed=0)
            qualities.append(None if lr.jpeg is None else jpeg_file_quality(lr.jpeg))
            sigmas.append(noise_sigma(lr.pixels))
            for j, strength in enumerate(strengths):
                sr, _ = run_method(method, lr.pixels, s, (pair.at(strength), s), precision="fp32")
                scores[i, j] = psnr(sr, hr, shave=s, channel="y")
        mean = scores.mean(axis=0)
        rows.append(
            {
                "degradation": case,
                "quality": qualities[0],
                "sigma": round(float(np.mean(sigmas)), 3),
                "psnr_by_strength": {str(k): round(float(v), 4) for k, v in zip(strengths, mean, strict=True)},
                "best_strength": strengths[int(np.argmax(mean))],
                "gain_best_over_clean": round(float(mean.max() - mean[0]), 4),
            }
        )
        print(
            f"{case:>9}  q {qualities[0] or '-':>3}  sigma {np.mean(sigmas):5.2f}  best {rows[-1]['best_strength']:.1f}"
            f"  " + " ".join(f"{v:6.2f}" for v in mean),
            flush=True,
        )

    fit = fit_rows(rows, clean_readings(Path(args.run), s), args.budget)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"scale": s, "images": [n for n, _ in images], "rows": rows, "fit": fit}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
