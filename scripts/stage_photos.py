"""Stage the extra clean training photographs of docs/training.md ("More training images") from the snapshots the
search tools' `fetch` brings, outside the work tree:

    python scripts/stage_photos.py [--mirrors /work/.mirror] [--out /work/staging/photos] [--benchmark DIR]

Each source is a public repository of desktop wallpapers under CC0 or the Unsplash licence (no attribution
required; SOURCES below). A file is kept if it is a JPEG photograph (not a render or a drawing: EXCLUDED) of at
least MIN_BPP bits per pixel, and not a near-copy of a file kept before it or of a benchmark image (16x16
thumbnails, correlation above SAME). It is shrunk with the MATLAB bicubic by the smallest integer factor >= 2 that
brings its long side to LONG_SIDE or less (the shrink removes the JPEG's artefacts: the result is clean HR) and
written as PNG tiles of about TILE x TILE pixels: the training sampler draws images, not pixels, uniformly, so
tiles of about a BSD image's size make a staged pixel as likely to be drawn as a BSD one. `SOURCES.tsv` beside the
tiles gives each picture's repository, commit, path and licence.
"""

from __future__ import annotations

import argparse
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from superres.imaging.io import Picture, read_image, write_image
from superres.imaging.resize import imresize

# (repository as the fetch tool names its folder, commit, folder, licence)
SOURCES = [
    ("elementary/wallpapers", "f28b8614", "backgrounds/", "CC0 / Unsplash / Pexels (debian/copyright, deb-packaging)"),
    ("BuddiesOfBudgie/budgie-backgrounds", "82067426", "backgrounds/", "CC0-1.0 (README, LICENSE)"),
    ("pop-os/wallpapers", "03a25a14", "original/", "Unsplash licence (README)"),
    ("linuxdeepin/deepin-wallpapers", "ac2fe337", "nonfree/unsplash.com/", "Unsplash licence (.reuse/dep5)"),
]
# a woodblock-print look; a line drawing; another crop of elementary's "Photo by SpaceX"
EXCLUDED = {"ocean-waves.jpg", "sebastien-gabriel-232361.jpg", "spacex-81773.jpg"}
MIN_BPP = 0.6  # below this a 4K JPEG's artefacts survive the shrink
LONG_SIDE = 2040  # DIV2K's
SAME = 0.98  # thumbnail correlation above which two pictures are one
TILE = 480  # BSD's images are 481x321


def git(mirror: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True)


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """A 16x16 gray thumbnail, zero mean and unit norm (for correlation)."""
    t = np.asarray(Image.fromarray(pixels).convert("L").resize((16, 16), Image.Resampling.BOX), np.float64).ravel()
    t = t - t.mean()
    return t / (np.linalg.norm(t) + 1e-9)


def write_tiles(pixels: np.ndarray, out: Path, stem: str) -> int:
    """Cut `pixels` into a grid of near-equal tiles of at most TILE x TILE, written as out/stem-RC.png; their number."""
    ys = np.linspace(0, pixels.shape[0], math.ceil(pixels.shape[0] / TILE) + 1).astype(int)
    xs = np.linspace(0, pixels.shape[1], math.ceil(pixels.shape[1] / TILE) + 1).astype(int)
    for r in range(len(ys) - 1):
        for c in range(len(xs) - 1):
            tile = np.ascontiguousarray(pixels[ys[r] : ys[r + 1], xs[c] : xs[c + 1]])
            write_image(out / f"{stem}-{r}{c}.png", Picture(tile), overwrite=True)
    return (len(ys) - 1) * (len(xs) - 1)


def benchmark_thumbnails(folder: Path | None) -> list[np.ndarray]:
    """Thumbnails of every HR benchmark image under `folder`, in the 4 rotations (both orientations)."""
    if folder is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*/HR/*.png")):
        pixels = read_image(path).pixels
        out += [thumbnail(np.ascontiguousarray(np.rot90(pixels, k))) for k in range(4)]
    return out


def main(mirrors: Path, out: Path, benchmark: Path | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    seen = benchmark_thumbnails(benchmark)
    n_benchmark = len(seen)
    table = ["files\trepository\tcommit\tpath\tlicence\toriginal size\tbits per pixel\tshrunk by"]
    for repo, commit, folder, licence in SOURCES:
        mirror = mirrors / repo.replace("/", "+") / "repo"
        names = git(mirror, "ls-tree", "-r", "--name-only", commit, folder).stdout.decode().splitlines()
        if not names:
            print(f"{repo}@{commit}: not fetched (or no {folder}); skipped", file=sys.stderr)
        for name in names:
            base = name.rsplit("/", 1)[-1]
            if not base.lower().endswith((".jpg", ".jpeg")) or base in EXCLUDED:
                continue
            blob = git(mirror, "cat-file", "-p", f"{commit}:{name}")
            if blob.returncode:  # the snapshot leaves out files of 4 MiB and more
                continue
            image = Image.open(io.BytesIO(blob.stdout)).convert("RGB")
            bpp = len(blob.stdout) * 8 / (image.width * image.height)
            if bpp < MIN_BPP:
                continue
            pixels = np.asarray(image)
            t = thumbnail(pixels)
            match = max((float(t @ s) for s in seen), default=0.0)
            if match > SAME:
                print(f"{repo}:{name}: a copy of an earlier or benchmark picture ({match:.3f}); skipped")
                continue
            seen.append(t)
            factor = max(2, math.ceil(max(image.size) / LONG_SIDE))
            stem = f"{repo.split('/')[0]}-{Path(base).stem}".replace(" ", "-").lower()
            tiles = write_tiles(imresize(pixels, scale=1 / factor), out, stem)
            table.append(
                f"{stem}-*.png\t{repo}\t{commit}\t{name}\t{licence}\t{image.width}x{image.height}\t{bpp:.2f}\t{factor}"
            )
            print(f"{stem}: {image.width}x{image.height} / {factor}, {bpp:.2f} bpp, {tiles} tiles", flush=True)
    (out / "SOURCES.tsv").write_text("\n".join(table) + "\n")
    print(f"{len(table) - 1} pictures in {out} (checked against {n_benchmark // 4} benchmark images)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"), help="where fetch put the snapshots")
    parser.add_argument("--out", type=Path, default=Path("/work/staging/photos"))
    parser.add_argument("--benchmark", type=Path, default=Path("../shared/data/benchmark"), help="sets to avoid")
    args = parser.parse_args()
    raise SystemExit(main(args.mirrors, args.out, args.benchmark))
