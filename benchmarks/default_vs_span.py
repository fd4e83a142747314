"""The speed target of issue 24: the bundled default's whole `superres.upscale` call for a 1280x720 output at x2 against
SPAN ch48's (the published x2 file of ../shared/models) through superres, with the same backend, in one run.

    python benchmarks/default_vs_span.py                       # backend auto (OpenVINO on a CPU where installed)
    python benchmarks/default_vs_span.py --backend torch --repeat 7

Each call is `superres.upscale(image, scale=2, backend=B)` on a uint8 array, every other setting at its default
(precision auto, denoise auto, correction off); the two models take turns, `--rounds` times, and each round keeps
the best of `--repeat` calls once warm, so a slow spell of the machine hits both. Prints each round's times and
the ratio of the medians. The input is scikit-image's astronaut photo, tiled. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import superres
from common import best_time, photo

ROOT = Path(__file__).resolve().parents[1]
SPAN_X2 = ROOT / ".." / "shared" / "models" / "span_x2_ch48.safetensors"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="auto")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--span", default=str(SPAN_X2), help="the SPAN x2 file (default: ../shared/models)")
    args = p.parse_args()
    if not Path(args.span).is_file():
        print(f"error: {args.span}: no such file (needs ../shared/models)", file=sys.stderr)
        return 2
    img = photo(360, 640)
    models = {"default": None, "SPAN ch48 x2": args.span}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            call = lambda m=model: superres.upscale(img, scale=2, model=m, backend=args.backend)  # noqa: E731
            times[name].append(best_time(call, args.repeat))
    print(f"{platform.processor() or platform.machine()}, {superres.__version__}, backend {args.backend}")
    print("whole call, 640x360 -> 1280x720 (x2), ms per round (best of each round's calls):")
    for name, ts in times.items():
        print(
            f"  {name:<14} "
            + " ".join(f"{t * 1000:7.1f}" for t in ts)
            + f"   median {statistics.median(ts) * 1000:.1f}"
        )
    ratio = statistics.median(times["default"]) / statistics.median(times["SPAN ch48 x2"])
    print(f"default / SPAN ch48: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
