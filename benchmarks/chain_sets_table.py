"""Print benchmarks/chain_sets.sh's results: per set, scale and degradation, the gain over bicubic (Y-PSNR dB)
of `--denoise auto` and of `auto+chain`, and their difference.

    python benchmarks/chain_sets_table.py docs/results/chain-sets.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    rows = json.loads(Path(path).read_text())["results"]
    psnr = {(r["dataset"], r["scale"], r["degradation"], r["method"]): r["psnr"] for r in rows}
    print("| set | scale | input | auto | auto+chain | difference |")
    print("|---|---|---|---|---|---|")
    for (data, scale, kind, method), value in psnr.items():
        if method != "bicubic":
            continue
        auto, chain = psnr[data, scale, kind, "auto"] - value, psnr[data, scale, kind, "auto+chain"] - value
        print(f"| {data} | x{scale} | {kind} | {auto:+.2f} | {chain:+.2f} | {chain - auto:+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
