"""Inference speed on this machine: each bundled model (or --model files), at each of its scales, against
the conv roofline and against the first bundled default (an fp32 edsr-medium forward at the same scale).

Prints, per model and scale: GFLOPs for a 1280x720 output, seconds for the bare forward (fp32 and bf16),
GFLOP/s and the share of the roofline, megapixels/s, the bf16 PSNR cost, the whole `superres upscale`
command on a folder of 4 PNGs (decode + model + encode per image, default settings, so precision auto,
interpreter start-up excluded) against the bare fp32 forward and against the fp32 forward of an
edsr-medium at that scale (the issue #10 target: at most 0.55), tiled vs untiled, onnxruntime vs
PyTorch; then bicubic for comparison and the peak RSS of `superres upscale` on a 4000x3000 RGB PNG at x2.

    python benchmarks/inference_speed.py [--model FILE ...] [--roofline-fp32 225] [--roofline-bf16 430]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import best_time, photo
from superres.evaluation.metrics import psnr
from superres.imaging.io import Picture, write_image
from superres.imaging.resize import imresize
from superres.inference.devices import resolve_precision
from superres.inference.upscaler import Upscaler
from superres.models.checkpoints import load_model
from superres.models.registry import PRETRAINED, create_model
from superres.models.summary import summarize

OUT_H, OUT_W = 720, 1280
CLI_IMAGES = 4  # the CLI is timed on a folder of this many images, per image


def cli_per_image(
    spec: str, scale: int, lr: np.ndarray, tmp: Path, forwards: list, times: list[float]
) -> tuple[float, list[float]]:
    """Seconds per image of `superres upscale --scale S` (its `main`, default settings) on a folder of
    CLI_IMAGES PNGs: decode + model + encode, model loading included, interpreter start-up not. One warm-up
    run first; then the command and each bare forward take turns (this machine's speed drifts) and the
    best of each is kept."""
    from superres.cli.main import main as cli

    for i in range(CLI_IMAGES):
        write_image(tmp / "in" / f"{i}.png", Picture(lr))
    argv = [
        "upscale",
        str(tmp / "in"),
        "--model",
        spec,
        "--scale",
        str(scale),
        "-o",
        str(tmp / "out"),
        "--overwrite",
        "--quiet",
    ]
    assert cli(argv) == 0
    t_cli = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        assert cli(argv) == 0
        t_cli = min(t_cli, (time.perf_counter() - t0) / CLI_IMAGES)
        times = [min(t, best_time(f, repeat=1)) for f, t in zip(forwards, times, strict=False)]
    return t_cli, times


def peak_rss_mb(model_spec: str) -> float:
    """benchmarks/peak_memory.py in a fresh process: `superres upscale` on a 4000x3000 RGB PNG at x2."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("peak_memory.py")), model_spec],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.split()[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", help="weights files (default: every bundled model)")
    parser.add_argument("--roofline-fp32", type=float, default=225.0, help="GFLOP/s")
    parser.add_argument("--roofline-bf16", type=float, default=430.0, help="GFLOP/s")
    parser.add_argument("--no-rss", action="store_true", help="skip the 4000x3000 memory measurement")
    args = parser.parse_args()
    specs = args.model or sorted(PRETRAINED)
    if not specs:
        print("no bundled models and no --model given")
        return 2
    print(f"machine: {os.cpu_count()} CPU threads, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    print(f"output {OUT_W}x{OUT_H}; roofline {args.roofline_fp32:.0f} GFLOP/s fp32, {args.roofline_bf16:.0f} bf16\n")
    print(f"precision auto on this CPU: {resolve_precision('auto', torch.device('cpu'))}\n")
    header = (
        f"{'model':<20} {'scale':>5} {'GFLOP':>6} {'fp32 s':>7} {'GFLOP/s':>8} {'roof%':>6} {'MP/s':>6} "
        f"{'bf16 s':>7} {'roof%':>6} {'bf16 dB':>8} {'CLI s':>6} {'CLI/fwd':>8} {'ref s':>6} {'CLI/ref':>8} "
        f"{'tiled s':>8} {'ort s':>6}"
    )
    print(header)
    print("-" * len(header))
    for spec in specs:
        model = load_model(spec)
        for s in model.scales:
            lr_h, lr_w = OUT_H // s, OUT_W // s
            gflop = 2 * sum(r.macs for r in summarize(model, (lr_h, lr_w), s)) / 1e9
            lr = photo(lr_h, lr_w)
            x = lr.astype(np.float32)
            fp32 = Upscaler(model, s, device="cpu", precision="fp32", tile=0)
            bf16 = Upscaler(model, s, device="cpu", precision="bf16", tile=0)
            # the reference: the first bundled default's architecture at this scale, fp32, bare forward
            ref = Upscaler(create_model("edsr-medium", scale=s), device="cpu", precision="fp32", tile=0)
            t32, t_ref = best_time(lambda fp32=fp32, x=x: fp32(x)), best_time(lambda ref=ref, x=x: ref(x))
            t16 = best_time(lambda bf16=bf16, x=x: bf16(x))
            hr = photo(lr_h * s, lr_w * s)
            lr_b = imresize(hr, 1 / s)
            out32 = np.clip(np.round(fp32(lr_b.astype(np.float32))), 0, 255).astype(np.uint8)
            out16 = np.clip(np.round(bf16(lr_b.astype(np.float32))), 0, 255).astype(np.uint8)
            cost = psnr(out16, hr, shave=s) - psnr(out32, hr, shave=s)
            tiled = Upscaler(model, s, device="cpu", precision="fp32", tile=max(64, lr_h // 2))
            t_tiled = best_time(lambda tiled=tiled, x=x: tiled(x), repeat=2)
            with tempfile.TemporaryDirectory() as tmp:
                t_cli, (t32, t_ref) = cli_per_image(
                    spec, s, lr, Path(tmp), [lambda fp32=fp32, x=x: fp32(x), lambda ref=ref, x=x: ref(x)], [t32, t_ref]
                )
                t_ort = float("nan")
                try:
                    from superres.inference.onnx import export_onnx

                    onnx_path = export_onnx(model, Path(tmp) / "m.onnx", scale=s)
                    ort = Upscaler(load_model(onnx_path), tile=0)  # an ONNX file: the onnxruntime backend
                    t_ort = best_time(lambda ort=ort, x=x: ort(x), 2)
                except Exception as e:  # noqa: BLE001 - onnxruntime not installed: leave the column empty
                    print(f"  (onnxruntime skipped: {e})")
            gflops = gflop / t32
            print(
                f"{spec:<20} {'x' + str(s):>5} {gflop:>6.1f} {t32:>7.3f} {gflops:>8.1f} "
                f"{100 * gflops / args.roofline_fp32:>5.0f}% {OUT_H * OUT_W / 1e6 / t32:>6.2f} {t16:>7.3f} "
                f"{100 * gflop / t16 / args.roofline_bf16:>5.0f}% {cost:>+8.3f} {t_cli:>6.3f} {t_cli / t32:>8.2f} "
                f"{t_ref:>6.3f} {t_cli / t_ref:>8.2f} {t_tiled:>8.3f} {t_ort:>6.3f}"
            )
    t_bic = best_time(lambda: imresize(photo(OUT_H // 2, OUT_W // 2), 2))
    print(
        f"\nbicubic x2 (MATLAB-exact, NumPy) to {OUT_W}x{OUT_H}: {t_bic:.3f} s, {OUT_H * OUT_W / 1e6 / t_bic:.1f} MP/s"
    )
    if not args.no_rss:
        print(f"peak RSS, 4000x3000 RGB x2 with {specs[0]} (default settings): {peak_rss_mb(specs[0]):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
