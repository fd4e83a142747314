"""Every runtime side by side (issue 22): PyTorch fp32 and bf16, ONNX Runtime fp32, OpenVINO fp32 and bf16, and
superres's whole call, for the bundled default at x2, x3 and x4 (1280x720 output) and for every published file
in ../shared/models at its largest scale (640x360 output, where the directory is there).

    python benchmarks/runtimes.py                  # the default, then every file of ../shared/models
    python benchmarks/runtimes.py --default-only
    python benchmarks/runtimes.py --files span_x4.safetensors rlfn_x4.safetensors

Each runtime row is the backend's runner (superres.inference.backends) on one (1, 3, h, w) tensor: the network
plus the conversion to and from its pixel range, nothing else; best of --repeat after a warm-up call that
compiles. "whole call" is `superres.upscale(image, scale=S)` (with `model=FILE` for a file) on a uint8 array
with every default (backend auto, precision auto, denoise auto, correction off), best of --repeat once warm;
"precision int8" is that call with --precision int8 (the default only: it ships quantised); "first call" is
the first whole call of the process (loading, and for OpenVINO converting or reading the converted model from
the cache folder, and compiling). "max diff" is the largest difference to PyTorch fp32,
in gray levels (the whole call's rounded output against PyTorch fp32 rounded). GFLOP counts a multiply-add as
2 (superres.models.summary). The input is scikit-image's astronaut photo, tiled. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import superres
from common import best_time, photo
from superres.errors import SuperresError
from superres.inference.backends import BACKENDS
from superres.inference.devices import native_bf16
from superres.inference.openvino import int8_files
from superres.models import load_model
from superres.models.handle import ModelHandle
from superres.models.summary import summarize

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = [("PyTorch fp32", "torch", "fp32"), ("PyTorch bf16", "torch", "bf16"),
            ("ONNX Runtime fp32", "onnxruntime", "fp32"), ("OpenVINO fp32", "openvino", "fp32"),
            ("OpenVINO bf16", "openvino", "bf16")]  # fmt: skip


def block(handle: ModelHandle, model: str | None, scale: int, out_w: int, out_h: int, repeat: int) -> list[str]:
    """The markdown table of one model at one scale; also printed to stderr as it is made."""
    lr_h, lr_w = out_h // scale, out_w // scale
    img = photo(lr_h, lr_w)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().contiguous()
    gflop = 2 * sum(r.macs for r in summarize(handle, (lr_h, lr_w), scale)) / 1e9
    ref: np.ndarray | None = None
    rows: list[tuple[str, float, float]] = []  # runtime, seconds, max diff
    for label, backend, precision in RUNTIMES:
        try:
            runner = BACKENDS[backend].prepare(handle, "cpu", precision, None)
            with torch.inference_mode():
                y = runner.run(x, scale).numpy()
                seconds = best_time(lambda r=runner: r.run(x, scale), repeat)
        except SuperresError as e:
            print(f"  {label}: {e}", file=sys.stderr)
            continue
        ref = y if ref is None else ref
        rows.append((label, seconds, float(np.abs(y - ref).max())))
    assert ref is not None, "PyTorch fp32 runs every model"
    t0 = time.perf_counter()
    out = superres.upscale(img, scale=scale, model=model)
    first = time.perf_counter() - t0
    whole = best_time(lambda: superres.upscale(img, scale=scale, model=model), repeat)
    rounded = np.clip(np.floor(ref[0].transpose(1, 2, 0) + 0.5), 0, 255)
    rows.append(("superres.upscale whole call", whole, float(np.abs(out.astype(np.float32) - rounded).max())))
    if model is None and int8_files(handle):  # a bundled default that also ships quantised: --precision int8
        q = superres.upscale(img, scale=scale, precision="int8")
        int8 = best_time(lambda: superres.upscale(img, scale=scale, precision="int8"), repeat)
        rows.append(("superres.upscale, precision int8", int8, float(np.abs(q.astype(np.float32) - rounded).max())))
    name = model or f"{handle.name} (the default)"
    lines = [
        f"{name} x{scale}: {lr_w}x{lr_h} in, {lr_w * scale}x{lr_h * scale} out, {gflop:.1f} GFLOP",
        "",
        "| runtime | ms | vs whole call | max diff (levels) | GFLOP/s |",
        "|---|---|---|---|---|",
    ]
    for label, seconds, diff in rows:
        bold = "**" if label.startswith("superres") else ""
        ms, ratio, rate = seconds * 1000, seconds / whole, gflop / seconds
        lines.append(f"| {bold}{label}{bold} | {ms:.0f} | {ratio:.2f}x | {diff:.2f} | {rate:.0f} |")
    lines.append(f"| first call of the process | {first * 1000:.0f} | {first / whole:.2f}x | | |")
    times = {label: seconds for label, seconds, _ in rows}
    if "OpenVINO bf16" in times and "PyTorch bf16" in times:
        lines.append(
            f"\nwhole call / OpenVINO bf16 forward: {whole / times['OpenVINO bf16']:.2f} (target <= 1.05); "
            f"whole call / PyTorch bf16 forward: {whole / times['PyTorch bf16']:.2f} (target <= 0.7)"
        )
    lines.append("")
    print("\n".join(lines), file=sys.stderr, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--files", nargs="*", help="file names in --models (default: every one in MANIFEST.tsv)")
    parser.add_argument("--default-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import openvino

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"native bf16: {native_bf16()}; torch {torch.__version__}, OpenVINO {openvino.__version__}\n"
    )
    lines: list[str] = []
    default = load_model(None)
    for scale in default.scales:
        lines += block(default, None, scale, 1280, 720, args.repeat)
    if not args.default_only and (args.models / "MANIFEST.tsv").is_file():
        with open(args.models / "MANIFEST.tsv", newline="") as f:
            files = [row["file"] for row in csv.DictReader(f, delimiter="\t")]
        for file in args.files or files:
            handle = load_model(args.models / file)
            lines += block(handle, str(args.models / file), handle.scales[-1], 640, 360, args.repeat)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
