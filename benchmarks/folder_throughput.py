"""Folder throughput: does reading and writing hide behind the network?

A folder of 1280x720 PNGs (scikit-image's astronaut, tiled and shifted so that no two are alike) is
upscaled x2 by the bundled default with default settings (precision auto, denoise auto). Per image:
- network: the bare network on pictures already in memory (ImageUpscaler.stream(...).collect(), which is
  the network plus rounding; nothing read, nothing written);
- one at a time: read, upscale, write, in turn, in one thread (the way `upscale` ran before issue 12);
- threaded: run_batch, with its reader and writer threads around the network;
- command: `superres upscale FOLDER -o OUT` through cli.main (model loading included, interpreter
  start-up not).
With --fast, the same again with edsr-tiny (random weights; about 9x faster than the default here), standing in
for a network on a GPU, where reading and writing are a large share of the time. Each is timed --repeat times,
taking turns (this machine's speed drifts), and the best is kept. The target: threaded (and the command) within
10% of the network.

    python benchmarks/folder_throughput.py [--images 6] [--repeat 2] [--fast]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from common import cpu_name, photo
from superres.api import ImageUpscaler
from superres.cli.main import main as cli
from superres.imaging.io import Picture, read_image, write_image
from superres.inference.batch import Job, run_batch
from superres.inference.devices import resolve_precision
from superres.models import create_model, save_weights

H, W = 720, 1280


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="also with edsr-tiny, a stand-in for a GPU")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="superres-throughput-"))
    big = photo(H + 64 * args.images, W + 64 * args.images)
    for i in range(args.images):
        write_image(tmp / "in" / f"{i}.png", Picture(big[64 * i : 64 * i + H, 32 * i : 32 * i + W]))
    files = sorted((tmp / "in").iterdir())
    print(
        f"{args.images} PNGs of {W}x{H}, x2 to {2 * W}x{2 * H}, {resolve_precision('auto', torch.device('cpu'))}, "
        f"{torch.get_num_threads()} threads, {cpu_name()}; seconds per image, best of {args.repeat}"
    )
    measure(files, tmp, args, None, "bundled default (mdsr-medium)")
    if args.fast:
        torch.manual_seed(0)
        tiny = save_weights(create_model("edsr-tiny"), tmp / "edsr-tiny.safetensors")
        measure(files, tmp, args, str(tiny), "edsr-tiny, random weights")


def measure(files: list[Path], tmp: Path, args: argparse.Namespace, model: str | None, title: str) -> None:
    runner = ImageUpscaler(scale=2, model=model)
    pictures = [read_image(p) for p in files]
    choices = [runner.choose_denoise(p) for p in pictures]

    def network() -> None:
        for picture, choice in zip(pictures, choices, strict=True):
            runner.stream(picture, choice).collect()

    def one_at_a_time() -> None:
        for path in files:
            picture = read_image(path)
            write_image(tmp / "seq" / path.name, runner.stream(picture, runner.choose_denoise(picture)), overwrite=True)

    def threaded() -> None:
        outcome = run_batch([Job(p, tmp / "thr" / p.name) for p in files], runner, overwrite=True)
        assert not outcome.errors, outcome.errors

    def command() -> None:
        extra = [] if model is None else ["--model", model]
        assert cli(["upscale", str(tmp / "in"), "-o", str(tmp / "cli"), "--overwrite", "--quiet", *extra]) == 0

    ways = {"network": network, "one at a time": one_at_a_time, "threaded": threaded, "command": command}
    network()  # warm-up
    best = {name: float("inf") for name in ways}
    for _ in range(args.repeat):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / args.images)
    print(f"\n{title}\n{'way':<16} {'s/image':>8} {'vs network':>11}")
    for name, seconds in best.items():
        print(f"{name:<16} {seconds:>8.3f} {seconds / best['network']:>10.3f}x")


if __name__ == "__main__":
    main()
