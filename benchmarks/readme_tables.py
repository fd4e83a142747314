"""Print the README's result tables from `superres eval --json` output (Y and RGB scores in one file).

    superres eval --data ../shared/data/benchmark/{Set5,Set14,B100} --scale 2,3,4 --channel y,rgb \\
        --methods bilinear,bicubic,model,model+correct --json docs/results/eval.json
    python benchmarks/readme_tables.py docs/results/eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SETS = ("Set5", "Set14", "B100")
# Published Y-PSNR (../shared/data/README.md): EDSR-baseline trained on DIV2K, and MATLAB bicubic.
EDSR_BASELINE = {2: (37.99, 33.57, 32.16), 3: (34.37, 30.28, 29.09), 4: (32.09, 28.58, 27.57)}
BICUBIC = {2: (33.66, 30.24, 29.56), 3: (30.39, 27.55, 27.21), 4: (28.42, 26.00, 25.96)}


def main(path: str) -> int:
    results = json.loads(Path(path).read_text())["results"]

    def get(method: str, dataset: str, scale: int, channel: str, key: str = "psnr") -> float | None:
        for r in results:
            if (r["method"], r["dataset"], r["scale"], r["channel"]) == (method, dataset, scale, channel):
                return r[key]
        return None

    methods = list(dict.fromkeys(r["method"] for r in results))
    scales = sorted({r["scale"] for r in results})
    print("Y-PSNR (dB) / SSIM, shave = ceil(scale):\n")
    print("| scale | method | " + " | ".join(SETS) + " |")
    print("|---|---|" + "---|" * len(SETS))
    for s in scales:
        for m in methods:
            cells = []
            for d in SETS:
                p, q = get(m, d, s, "y"), get(m, d, s, "y", "ssim")
                cells.append("-" if p is None else f"{p:.2f} / {q:.4f}")
            if any(c != "-" for c in cells):
                print(f"| x{s:g} | {m} | " + " | ".join(cells) + " |")
        if s in BICUBIC:
            print(f"| x{s} | *published bicubic* | " + " | ".join(f"*{v:.2f}*" for v in BICUBIC[s]) + " |")
            print(f"| x{s} | *published EDSR-baseline* | " + " | ".join(f"*{v:.2f}*" for v in EDSR_BASELINE[s]) + " |")
    print("\nThe original report's table shape, on B100 (RGB PSNR, dB):\n")
    print("| scale | model alone | bilinear | model + correction |")
    print("|---|---|---|---|")
    for s in [s for s in scales if s == int(s)]:
        vals = [get(m, "B100", s, "rgb") for m in ("model", "bilinear", "model+correct")]
        if all(v is None for v in vals):
            continue
        print(f"| x{s} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in vals) + " |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "path", nargs="?", default="docs/results/eval.json", help="`superres eval --json` output (default: %(default)s)"
    )
    sys.exit(main(parser.parse_args().path))
