"""What the default runtime costs in accuracy (issue 22): Y-PSNR of `--backend auto --precision auto` (what
`superres upscale` runs here: OpenVINO bf16 on a CPU with native bf16) and of PyTorch bf16, each minus PyTorch
fp32, for the bundled default on Set5, Set14 and B100 at x2, x3 and x4, and for every published file in
../shared/models on Set5 at each of its scales.

    python benchmarks/auto_psnr.py                     # the default, then every file of ../shared/models
    python benchmarks/auto_psnr.py --default-only
    python benchmarks/auto_psnr.py --files carn_m.safetensors

Scored as `superres eval` scores (Y of BT.601, `scale` pixels shaved, the MATLAB-bicubic LR files), with
`superres eval --backend B --precision P`; the same numbers come from that command.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from superres.evaluation.benchmark import EvalConfig, evaluate
from superres.inference.devices import native_bf16
from superres.models import load_model

ROOT = Path(__file__).resolve().parents[1]
RUNS = [("torch", "fp32"), ("auto", "auto"), ("torch", "bf16")]


def scores(method: str, sets: list[Path], scales: list[int]) -> dict[tuple[str, str, int], float]:
    """(backend, precision, dataset, scale) -> Y-PSNR, for each run of RUNS."""
    out = {}
    for backend, precision in RUNS:
        config = EvalConfig(
            datasets=[str(s) for s in sets], scales=scales, methods=[method], backend=backend, precision=precision
        )
        for row in evaluate(config).results:
            if row["channel"] == "y":
                out[(backend, precision, row["dataset"], row["scale"])] = float(row["psnr"])
    return out


def rows(name: str, method: str, sets: list[Path], scales: list[int]) -> list[str]:
    got = scores(method, sets, scales)
    lines = []
    for s in sets:
        for scale in scales:
            fp32 = got[("torch", "fp32", s.name, scale)]
            auto = got[("auto", "auto", s.name, scale)] - fp32
            bf16 = got[("torch", "bf16", s.name, scale)] - fp32
            lines.append(f"| {name} | {s.name} x{scale} | {fp32:.3f} | {auto:+.4f} | {bf16:+.4f} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "benchmark")
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--files", nargs="*", help="file names in --models (default: every one in MANIFEST.tsv)")
    parser.add_argument("--default-only", action="store_true")
    args = parser.parse_args()
    print(f"native bf16 on this CPU: {native_bf16()}\n")
    print("| model | set | PyTorch fp32 (dB) | auto - fp32 | PyTorch bf16 - fp32 |\n|---|---|---|---|---|")
    sets = [args.data / name for name in ("Set5", "Set14", "B100")]
    rows(f"{load_model(None).name} (default)", "model", sets, [2, 3, 4])
    if args.default_only or not (args.models / "MANIFEST.tsv").is_file():
        return
    with open(args.models / "MANIFEST.tsv", newline="") as f:
        files = args.files or [row["file"] for row in csv.DictReader(f, delimiter="\t")]
    for file in files:
        path = args.models / file
        rows(file, str(path), sets[:1], list(load_model(path).scales))


if __name__ == "__main__":
    main()
