"""Print the README's real-photo tables from `superres eval --degrade ... --json` files: per set and scale, each
degradation's Y-PSNR for every method and the gain of auto over bicubic (at x1: over the degraded input).

    python benchmarks/degraded_table.py docs/results/degraded.json docs/results/degraded-x1.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGETS = {"jpeg:75": 1.2, "jpeg:50": 1.0, "noise:10": 1.0, "real": 0.8}  # issue 11, x2: auto over bicubic


def main(paths: list[str]) -> int:
    results = [r for p in paths for r in json.loads(Path(p).read_text())["results"] if r["channel"] == "y"]
    psnr = {(r["dataset"], r["scale"], r["degradation"], r["method"]): r["psnr"] for r in results}
    methods = list(dict.fromkeys(r["method"] for r in results))
    for scale in sorted({r["scale"] for r in results}):
        base = "input" if scale == 1 else "bicubic"
        print(
            f"\nx{scale:g} (Y-PSNR dB against the clean HR; gain = auto - {base}"
            + ("; target at x2 in brackets" if scale == 2 else "")
            + ")\n"
        )
        sets = list(dict.fromkeys(r["dataset"] for r in results if r["scale"] == scale))
        print("| input | set | " + " | ".join(base if m == "bicubic" else m for m in methods) + " | gain |")
        print("|---|---|" + "---|" * (len(methods) + 1))
        for d in dict.fromkeys(r["degradation"] for r in results if r["scale"] == scale):
            for ds in sets:
                row = [psnr.get((ds, scale, d, m)) for m in methods]
                gain = psnr[(ds, scale, d, "auto")] - psnr[(ds, scale, d, "bicubic")]
                target = f" ({TARGETS[d]:+.1f})" if scale == 2 and d in TARGETS else ""
                if d == "clean":
                    over_model = psnr[(ds, scale, d, "auto")] - psnr[(ds, scale, d, "model")]
                    gain_text = f"{gain:+.2f} (auto - model {over_model:+.3f})"
                else:
                    gain_text = f"{gain:+.2f}{target}"
                print(
                    f"| {d} | {ds} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in row) + f" | {gain_text} |"
                )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="JSON files written by `superres eval --degrade ... --json`")
    raise SystemExit(main(parser.parse_args().paths))
