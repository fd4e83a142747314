"""A layer-by-layer view of a model: output shape, parameters and multiply-adds for a given input size.

Shapes are found by running the model on PyTorch's 'meta' device, so even the 43M-parameter EDSR on a
large input costs no compute and no memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from superres.models.base import SRNet
from superres.models.edsr import MeanShift
from superres.models.handle import ModelHandle, as_handle


@dataclass(frozen=True)
class LayerRow:
    name: str  # state-dict prefix, e.g. "body.3.body.0"
    kind: str  # "Conv2d(64->64, 3x3)"
    output_shape: tuple[int, ...]  # (C, H, W) for batch 1
    params: int
    macs: int  # multiply-accumulates for one image


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return f"Conv2d({module.in_channels}->{module.out_channels}, {kh}x{kw})"
    if isinstance(module, nn.PixelShuffle):
        return f"PixelShuffle({module.upscale_factor})"
    if isinstance(module, MeanShift):
        return "MeanShift"
    return type(module).__name__


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_pixel = 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_pixel = module.in_channels // module.groups * kh * kw
    elif isinstance(module, MeanShift):
        per_pixel = module.weight.shape[1]
    return int(out[0].numel()) * per_pixel


def summarize(
    model: ModelHandle | SRNet, input_size: tuple[int, int] = (100, 100), scale: int | None = None
) -> list[LayerRow]:
    """One row per leaf layer run, in execution order, for a single (n_colors, H, W) input at `scale` (None:
    the network's only scale)."""
    handle = as_handle(model)
    scale = handle.check_scale(scale)
    with torch.device("meta"):
        ghost = handle.family.build(handle.config)
    rows: list[LayerRow] = []
    names = {m: n for n, m in ghost.named_modules()}

    def hook(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerRow(names[module], _describe(module), tuple(out.shape[1:]), params, _macs(module, out)))

    leaves = [m for m in ghost.modules() if isinstance(m, MeanShift) or not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        h, w = input_size
        handle.family.forward(ghost, torch.empty(1, handle.n_colors, h, w, device="meta"), scale)
    finally:
        for handle in handles:
            handle.remove()
    return rows


def format_summary(rows: list[LayerRow], title: str = "") -> str:
    """A plain-text table with totals; MACs in millions or billions as the size calls for."""

    def fmt_macs(n: int) -> str:
        return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.2f} M"

    header = f"{'layer':<18} {'type':<26} {'output (C, H, W)':<20} {'params':>11} {'mult-adds':>12}"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for r in rows:
        shape = "(" + ", ".join(map(str, r.output_shape)) + ")"
        lines.append(f"{r.name:<18} {r.kind:<26} {shape:<20} {r.params:>11,} {fmt_macs(r.macs):>12}")
    lines.append("-" * len(header))
    total_p = sum(r.params for r in rows)
    total_m = sum(r.macs for r in rows)
    lines.append(f"{'total':<18} {'':<26} {'':<20} {total_p:>11,} {fmt_macs(total_m):>12}")
    lines.append(f"({2 * total_m / 1e9:.2f} GFLOPs for this input, counting a multiply-add as 2)")
    return "\n".join(lines)
