"""Print the README's comparison of the bundled default with the models it replaced, from `superres eval --json`
files: per factor and set, bicubic, the previous default (mdsr-medium since issue 24), the new default in fp32,
the difference, and the cost of precision auto.

    python benchmarks/floor_table.py --new docs/results/eval.json --auto docs/results/auto.json \\
        --previous docs/results/previous.json
"""

from __future__ import annotations

import argparse
import json
import sys

SETS = ("Set5", "Set14", "B100")


def rows(path: str) -> list[dict]:
    return [r for r in json.load(open(path))["results"] if r["channel"] == "y"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", required=True, help="eval JSON with bicubic and model (fp32)")
    parser.add_argument("--auto", required=True, help="eval JSON with model at --precision auto")
    parser.add_argument("--previous", nargs="+", required=True, help="eval JSONs of the previous models")
    args = parser.parse_args()
    new, auto = rows(args.new), rows(args.auto)
    previous = [r for p in args.previous for r in rows(p)]

    def fmt(v: float | None, sign: str = "") -> str:
        return "-" if v is None else f"{v:{sign}.2f}" if not sign else f"{v:+.3f}"

    def get(results: list[dict], method: str | None, dataset: str, scale: float) -> float | None:
        for r in results:
            if (method is None or r["method"] == method) and (r["dataset"], r["scale"]) == (dataset, scale):
                return r["psnr"]
        return None

    print("Y-PSNR (dB), shave = ceil(factor); previous = the default it replaced")
    print("| factor | set | bicubic | previous | new default | new - previous | auto - fp32 |")
    print("|---|---|---|---|---|---|---|")
    worst_gain, worst_auto = float("inf"), 0.0
    for scale in sorted({r["scale"] for r in new if r["method"] == "model"}):
        for d in SETS:
            bic, old = get(new, "bicubic", d, scale), get(previous, None, d, scale)
            fp32, half = get(new, "model", d, scale), get(auto, "model", d, scale)
            if fp32 is None:
                continue
            gain = None if old is None else fp32 - old
            cost = None if half is None else half - fp32
            worst_gain = min(worst_gain, gain if gain is not None else worst_gain)
            worst_auto = max(worst_auto, abs(cost) if cost is not None else 0.0)
            print(f"| x{scale:g} | {d} | {fmt(bic)} | {fmt(old)} | {fmt(fp32)} | {fmt(gain, '+')} | {fmt(cost, '+')} |")
    print(f"\nsmallest gain over the previous models: {worst_gain:+.3f} dB; largest |auto - fp32|: {worst_auto:.4f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
