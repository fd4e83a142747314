"""Print the table of issue 24's targets from benchmarks/eval_targets.sh's results (docs/results/targets/x*.json):
each model's Y-PSNR on Set5, Set14 and B100 at x2, x3 and x4, and the default's margin over the anchor of its scale
(SPAN ch48 at x2 and x4, IMDN at x3) and over mdsr-medium.

    benchmarks/eval_targets.sh && python benchmarks/targets_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ("Set5", "Set14", "B100")
ANCHORS = {2: "span_x2_ch48", 3: "imdn_x3", 4: "span_x4_ch48"}


def name(method: str) -> str:
    return "default" if method == "model" else Path(method).name.replace(".safetensors", "")


def main() -> int:
    lines = ["| scale | model | " + " | ".join(SETS) + " |", "|---|---|" + "---|" * len(SETS)]
    margins = []
    for scale in (2, 3, 4):
        path = ROOT / "docs" / "results" / "targets" / f"x{scale}.json"
        results = [r for r in json.loads(path.read_text())["results"] if r["channel"] == "y"]
        scores: dict[str, dict[str, float]] = {}
        for r in results:
            scores.setdefault(name(r["method"]), {})[r["dataset"]] = r["psnr"]
        for model, by_set in scores.items():
            lines.append(f"| x{scale} | {model} | " + " | ".join(f"{by_set[d]:.2f}" for d in SETS) + " |")
        for other in (ANCHORS[scale], "mdsr-medium"):
            diff = [scores["default"][d] - scores[other][d] for d in SETS]
            margins.append(
                f"x{scale} default - {other}: " + ", ".join(f"{d} {v:+.3f}" for d, v in zip(SETS, diff, strict=True))
            )
    print("\n".join(lines))
    print()
    print("\n".join(margins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
