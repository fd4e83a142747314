"""Training throughput: steps/s, patches/s and the share of the conv roofline, for a few presets.

A training step costs about 3x the forward multiply-adds (forward, and twice that backward), x2 FLOPs
each. Runs the real loop's pieces (sampler, autocast, channels_last, Adam) on synthetic images. Multi-scale
presets (mdsr-*) draw a scale per step, as `superres train --scale 2,3,4` does. On a GPU, patches are cut
on the device from images kept there ("device" sampler) and, for comparison, on the CPU ("host").

    python benchmarks/train_throughput.py [--presets edsr-medium mdsr-medium] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from superres.imaging.datasets import make_sample
from superres.imaging.degrade import parse_preset
from superres.models.registry import create_model
from superres.models.summary import summarize
from superres.training.loop import to_tensor
from superres.training.patches import DevicePatchSampler, MultiScaleSampler, PatchSampler


def throughput(
    preset: str,
    bf16: bool,
    device: torch.device,
    batch: int,
    patch: int,
    steps: int,
    on_device: bool,
    degradation: str | None = None,
) -> tuple[float, float]:
    """(steps/s, training GFLOP per step, averaged over the model's scales); degradation: LR patches made
    from the HR ones by that preset, inline"""
    rng = np.random.default_rng(0)
    model = create_model(preset).to(device).to(memory_format=torch.channels_last).train()
    images = [rng.integers(0, 256, size=(240, 240, 3), dtype=np.uint8) for _ in range(8)]
    samplers = {}
    for s in model.scales:
        samples = [make_sample(f"s{i}", hr, s) for i, hr in enumerate(images)]
        samplers[s] = (
            DevicePatchSampler(samples, s, patch, batch, device)
            if on_device
            else PatchSampler(samples, s, patch, batch, degradation=parse_preset(degradation) if degradation else None)
        )
    sampler = MultiScaleSampler(samplers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gflop = np.mean(
        [3 * 2 * batch * sum(r.macs for r in summarize(model, (patch, patch), s)) / 1e9 for s in model.scales]
    )

    def step() -> None:
        scale, lr, hr = sampler.sample()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            sr = model(to_tensor(lr, device, True), scale)
        loss = F.l1_loss(sr.float(), to_tensor(hr, device, True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0), gflop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["edsr-medium", "mdsr-medium", "edsr-baseline"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--roofline-fp32", type=float, default=225.0, help="GFLOP/s of this machine")
    parser.add_argument("--roofline-bf16", type=float, default=430.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"device {device}, {os.cpu_count()} CPU threads, torch {torch.__version__}; batch {args.batch_size}, "
        f"{args.patch_size} px LR patches; EDSR at x2, MDSR at x2/x3/x4 drawn per step"
    )
    print(
        f"{'preset':<15} {'precision':<9} {'sampler':<7} {'steps/s':>8} {'patches/s':>10} {'GFLOP/s':>8} "
        f"{'roofline':>9}"
    )
    for preset in args.presets:
        for bf16 in (True, False):
            for on_device in (True, False) if device.type == "cuda" else (False,):
                rate, gflop = throughput(preset, bf16, device, args.batch_size, args.patch_size, args.steps, on_device)
                roof = args.roofline_bf16 if bf16 else args.roofline_fp32
                share = f"{100 * rate * gflop / roof:.0f}%" if device.type == "cpu" else "-"
                print(
                    f"{preset:<15} {'bf16' if bf16 else 'fp32':<9} {'device' if on_device else 'host':<7} "
                    f"{rate:>8.2f} {rate * args.batch_size:>10.1f} {rate * gflop:>8.1f} {share:>9}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
