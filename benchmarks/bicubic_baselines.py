"""Check the evaluation protocol: bicubic Y-PSNR on Set5/Set14/B100 must match the published baselines.

Published numbers (../shared/data/README.md): PSNR on BT.601 Y (MATLAB coefficients), border of `scale`
pixels shaved, MATLAB-bicubic LR. Passes when every cell is within 0.02 dB.

    python benchmarks/bicubic_baselines.py [--data ../shared/data/benchmark]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from superres.evaluation.benchmark import EvalConfig, evaluate

PUBLISHED = {  # (set, scale) -> bicubic PSNR (dB)
    ("Set5", 2): 33.66,
    ("Set5", 3): 30.39,
    ("Set5", 4): 28.42,
    ("Set14", 2): 30.24,
    ("Set14", 3): 27.55,
    ("Set14", 4): 26.00,
    ("B100", 2): 29.56,
    ("B100", 3): 27.21,
    ("B100", 4): 25.96,
}
TOLERANCE = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/benchmark"
    )
    args = parser.parse_args()
    sets = ["Set5", "Set14", "B100"]
    results = evaluate(EvalConfig(datasets=[str(args.data / s) for s in sets], scales=[2, 3, 4], methods=["bicubic"]))
    worst = 0.0
    print(f"{'set':<6} {'scale':>5} {'ours':>8} {'published':>9} {'diff':>7}")
    for r in results.results:
        ref = PUBLISHED[(r["dataset"], r["scale"])]
        diff = r["psnr"] - ref
        worst = max(worst, abs(diff))
        print(f"{r['dataset']:<6} {'x' + str(r['scale']):>5} {r['psnr']:>8.3f} {ref:>9.2f} {diff:>+7.3f}")
    ok = worst <= TOLERANCE
    print(f"{'PASS' if ok else 'FAIL'}: largest difference {worst:.3f} dB (tolerance {TOLERANCE} dB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
