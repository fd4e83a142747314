"""Peak memory of `superres upscale` on a 4000x3000 RGB PNG at x2 with default settings, in this process.

    python benchmarks/peak_memory.py [MODEL] [--size 4000x3000]

Run it as its own process (inference_speed.py does): the figure is this process's peak resident set
(VmHWM on Linux; ru_maxrss elsewhere, which on Linux would also count a forking parent's pages).
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
from pathlib import Path

from common import photo
from superres.cli.main import main as cli
from superres.imaging.io import Picture, write_image
from superres.inference.upscaler import Upscaler
from superres.models.checkpoints import load_model
from superres.models.registry import default_model_name


def peak_mb() -> float:
    status = Path("/proc/self/status")
    found = re.search(r"VmHWM:\s+(\d+) kB", status.read_text()) if status.exists() else None
    return int(found.group(1)) / 1024 if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a bundled name or a weights file (default: the bundled x2 default)")
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the input")
    args = parser.parse_args()
    # (edsr-medium-x2, the default once, is no longer bundled: it is in the git history at commit 8c70c7c)
    args.model = args.model or default_model_name(2)
    if args.model is None:
        parser.error("no bundled model for x2: give MODEL")
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        write_image(Path(tmp) / "in.png", Picture(photo(h, w)))
        before = peak_mb()
        code = cli(
            ["upscale", str(Path(tmp) / "in.png"), "--model", args.model, "-o", str(Path(tmp) / "out.png"), "--quiet"]
        )
    print(f"peak RSS {peak_mb():.0f} MB (before upscaling: {before:.0f} MB)")
    model = load_model(args.model)
    runner = Upscaler(model, 2 if 2 in model.scales else None, device="cpu")  # what the command chose, for the record
    tile = runner.auto_tile(h, w)
    extra = ((tile + 2 * runner.margin) / tile) ** 2 - 1 if tile else 0.0
    print(
        f"memory budget {runner.memory_budget / 2**20:.0f} MB of activations: whole images up to "
        f"{runner.memory_budget / runner._bytes_per_pixel() / 1e6:.2f} LR megapixels; this one "
        + (
            f"in tiles of {tile} px with a {runner.margin} px margin (interior tiles read {100 * extra:.0f}% "
            "more pixels)"
            if tile
            else "whole"
        )
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
