"""A seeded mutation fuzzer over every reader superres has: images (PNG, JPEG, TIFF, BMP, WebP, GIF), videos
(MP4, Matroska, when PyAV is installed) and weights (.safetensors, .pt).

Valid files are made here, then mutated: bits flipped, cut short, byte ranges swapped, length fields set
huge, sizes in the header set huge or zero. Each mutant goes through the command line (`upscale`, or
`info` for weights) in this process, and must end in a correct output or a one-line error naming the file
(exit code 1; 2 for weights, a setup error), within a time bound, with no traceback and nothing left at the
output path. The address space is capped (--memory-gb), so a mutant that makes a reader allocate without
bound fails as an out-of-memory error instead of taking the machine.

    python tests/fuzz_driver.py --cases 300 --seed 0        # tests/test_fuzz.py runs this
    make fuzz                                               # a longer run

Prints one JSON line per failure, then a summary line; exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np


def seeds(folder: Path) -> dict[str, bytes]:
    """Small valid files of every kind, by name."""
    from PIL import Image

    from superres.imaging.io import Picture, encode_image

    rng = np.random.default_rng(0)
    photo = (np.add.outer(np.arange(24), np.arange(32))[..., None] * [3, 5, 7] % 256).astype(np.uint8)
    out: dict[str, bytes] = {}
    out["rgb.png"] = encode_image(Picture(photo), "PNG")
    out["deep.png"] = encode_image(Picture(rng.integers(0, 65536, (20, 18, 3), dtype=np.uint16)), "PNG")
    out["alpha.png"] = encode_image(Picture(photo, photo[..., 0].copy()), "PNG")
    for name, fmt, extra in (
        ("photo.jpg", "JPEG", {"quality": 80}),
        ("photo.bmp", "BMP", {}),
        ("photo.tif", "TIFF", {"compression": "tiff_lzw"}),
        ("photo.webp", "WEBP", {}),
        ("palette.gif", "GIF", {}),
        ("palette.png", "PNG", {}),
    ):
        buf = io.BytesIO()
        im = Image.fromarray(photo)
        if name.startswith("palette"):
            im = im.quantize(16)
        im.save(buf, fmt, **extra)
        out[name] = buf.getvalue()
    out["deep.tif"] = encode_image(Picture(rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)), "TIFF")
    try:
        out.update(_videos(folder))
    except ImportError:
        pass
    out.update(_weights(folder))
    return out


def _videos(folder: Path) -> dict[str, bytes]:
    import av

    out = {}
    for name, codec, fmt in (("clip.mp4", "libx264", "mp4"), ("clip.mkv", "mpeg4", "matroska")):
        path = folder / name
        with av.open(str(path), "w", format=fmt) as c:
            stream = c.add_stream(codec, rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    c.mux(packet)
            for packet in stream.encode():
                c.mux(packet)
        out[name] = path.read_bytes()
    return out


def _weights(folder: Path) -> dict[str, bytes]:
    import torch

    from superres.models import EDSR, EDSRConfig, save_weights

    torch.manual_seed(0)
    model = EDSR(EDSRConfig(scale=2, n_feats=4, n_resblocks=1))
    out = {"tiny.safetensors": save_weights(model, folder / "tiny.safetensors").read_bytes()}
    torch.save(model.state_dict(), folder / "tiny.pt")
    out["tiny.pt"] = (folder / "tiny.pt").read_bytes()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of `data`, and what it was."""
    b = bytearray(data)
    kind = rng.choice(["flip", "cut", "swap", "huge-length", "size", "flip-header"])
    if kind == "flip" or kind == "flip-header":
        limit = min(len(b), 64) if kind == "flip-header" else len(b)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, limit))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b), kind
    if kind == "cut":
        return bytes(b[: int(rng.integers(0, len(b)))]), kind
    if kind == "swap":
        n = int(rng.integers(1, max(2, len(b) // 4)))
        i, j = sorted(int(x) for x in rng.integers(0, max(1, len(b) - n), 2))
        b[i : i + n], b[j : j + n] = b[j : j + n], b[i : i + n]
        return bytes(b[: len(data)]), kind
    if kind == "huge-length":  # a 4-byte field near the start, as lengths and offsets are, set huge
        i = int(rng.integers(0, max(1, min(len(b), 256) - 4)))
        b[i : i + 4] = struct.pack(">I" if rng.random() < 0.5 else "<I", int(rng.choice([0xFFFFFFFF, 0x7FFFFFF0])))
        return bytes(b), kind
    # sizes: the header's width and height fields set to 0 or huge, where the format is known
    value = int(rng.choice([0, 1, 0xFFFF, 0x7FFF, 100000]))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        b[16:24] = struct.pack(">II", value if rng.random() < 0.5 else 24, value)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))  # with a valid CRC, so the size is read
    elif data[:2] == b"BM":
        b[18:26] = struct.pack("<ii", value, value)
    elif data[:4] in (b"GIF8",):
        b[6:10] = struct.pack("<HH", value & 0xFFFF, value & 0xFFFF)
    elif data[:2] == b"\xff\xd8":
        sof = data.find(b"\xff\xc0")
        if sof > 0:
            b[sof + 5 : sof + 9] = struct.pack(">HH", value & 0xFFFF, value & 0xFFFF)
    else:
        i = int(rng.integers(0, max(1, min(len(b), 128) - 4)))
        b[i : i + 4] = struct.pack("<I", value)
    return bytes(b), f"size={value}"


def run_case(path: Path, out: Path, weights: bool) -> tuple[int, str]:
    """The command on one file, in this process: (exit code, stderr)."""
    from superres.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        if weights:
            code = main(["info", str(path), "--input-size", "8x8"])
        else:
            code = main(["upscale", str(path), "--method", "bicubic", "--scale", "2", "-o", str(out), "--quiet"])
    return code, err.getvalue()


def check(path: Path, out: Path, weights: bool, code: int, err: str) -> str | None:
    """What is wrong with a case's outcome, or None."""
    from superres.imaging.io import read_image

    if "Traceback" in err:
        return "traceback"
    if weights:
        if code == 0:
            return None
        lines = [line for line in err.splitlines() if line.strip()]
        if code != 2 or len(lines) != 1 or not lines[0].startswith("error: "):
            return f"exit {code} with {len(lines)} line(s)"
        return None
    if code == 0:
        if not out.exists():
            return "success, but no output"
        if out.suffix in (".mp4", ".mkv"):
            return None
        try:
            read_image(out)
        except Exception as e:  # noqa: BLE001
            return f"success, but the output cannot be read back ({e})"
        return None
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    if code != 1 or len(lines) != 1 or (str(path) not in lines[0] and str(out) not in lines[0]):
        return f"exit {code}; errors {lines!r} (want one naming the file or its output)"
    if out.exists():
        return "an error, and yet an output"
    leftovers = [p.name for p in out.parent.iterdir()] if out.parent.exists() else []
    if leftovers:
        return f"files left: {leftovers}"
    return None


class Timeout(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound per case")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address-space cap for this process")
    args = parser.parse_args()
    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def alarm(signum, frame):
        raise Timeout

    signal.signal(signal.SIGALRM, alarm)
    rng = np.random.default_rng(args.seed)
    failures = 0
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="superres-fuzz-") as tmp:
        root = Path(tmp)
        valid = seeds(root)
        names = sorted(valid)
        for case in range(args.cases):
            name = names[case % len(names)]
            data, how = mutate(valid[name], rng)
            folder = root / f"case{case}"
            (folder / "in").mkdir(parents=True)
            path = folder / "in" / name
            path.write_bytes(data)
            weights = name.endswith((".safetensors", ".pt"))
            out = folder / "out" / (name if not weights else "unused")
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, args.seconds)
            try:
                code, err = run_case(path, out, weights)
                problem = check(path, out, weights, code, err)
            except Timeout:
                problem, err = f"over {args.seconds:g} s", ""
            except BaseException as e:  # noqa: BLE001 - anything that escapes main is a failure
                problem, err = f"escaped main: {type(e).__name__}: {e}", ""
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            worst = max(worst, time.monotonic() - t0)
            if problem:
                failures += 1
                print(
                    json.dumps({"case": case, "file": name, "mutation": how, "problem": problem, "stderr": err[-600:]}),
                    flush=True,
                )
    print(
        json.dumps(
            {
                "cases": args.cases,
                "failures": failures,
                "seed": args.seed,
                "slowest_s": round(worst, 2),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
