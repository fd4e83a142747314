"""The evaluation report: tables (md/csv/json), per-image PSNR plots, and side-by-side crops.

Plots need matplotlib (`pip install superres[report]`). Each is drawn on its own matplotlib.figure.Figure and
saved as PNG by matplotlib's Agg renderer, chosen by that save alone: no pyplot, and no backend chosen for
the process (matplotlib.use), so a program that shows figures keeps its own.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from superres.errors import ConfigError
from superres.evaluation.benchmark import EvalResults, Method
from superres.imaging.files import write_bytes, write_text

CROP_IMAGES = 3  # images per dataset and scale shown as crops (evaluate(keep_outputs=...))


def write_report(results: EvalResults, out_dir: str | Path) -> list[Path]:
    """Write everything into out_dir; returns the files written. Crops need the outputs that
    evaluate(..., keep_outputs=CROP_IMAGES) kept."""
    out = Path(out_dir)
    written = [
        write_text(out / "results.md", results.markdown() + "\n"),
        write_text(out / "results.json", results.to_json() + "\n"),
        write_text(out / "results.csv", _csv(results)),
    ]
    groups = list(dict.fromkeys((r["dataset"], r["scale"], r.get("degradation")) for r in results.results))
    for dataset, scale, degradation in groups:
        written.append(
            plot_per_image(results, dataset, scale, out / f"psnr_{_name(dataset, scale, degradation)}.png", degradation)
        )
    written += comparison_crops(results, out)
    return written


def _csv(results: EvalResults) -> str:
    buf = io.StringIO()
    keys = list(results.results[0].keys())
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(results.results)
    return buf.getvalue()


def _name(dataset: str, scale: float, degradation: str | None) -> str:
    """For file names: 'B100_x2', or 'B100_x2_jpeg-75' with a degradation."""
    tail = "" if degradation is None else "_" + "".join(c if c.isalnum() or c in ".-" else "-" for c in degradation)
    return f"{dataset}_x{scale}{tail}"


def plot_per_image(results: EvalResults, dataset: str, scale: int, path: Path, degradation: str | None = None) -> Path:
    """x = image, y = PSNR in dB, one line per method (as the original report's figures); written as a PNG."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ConfigError("plots need matplotlib: pip install 'superres[report]'") from e

    channel = next(r["channel"] for r in results.results if r["dataset"] == dataset)  # the first scored
    rows = [
        r
        for r in results.per_image
        if r["dataset"] == dataset
        and r["scale"] == scale
        and r["channel"] == channel
        and r.get("degradation") == degradation
    ]
    images = list(dict.fromkeys(r["image"] for r in rows))
    fig = Figure(figsize=(max(6.0, 0.12 * len(images) + 4), 4), dpi=110)
    ax = fig.subplots()
    for method in dict.fromkeys(r["method"] for r in rows):
        by_image = {r["image"]: r["psnr"] for r in rows if r["method"] == method}
        ax.plot(
            range(len(images)),
            [by_image.get(i, np.nan) for i in images],
            marker="o",
            markersize=3,
            linewidth=1,
            label=method,
        )
    ax.set_xticks(range(len(images)))
    ax.set_xticklabels(images, rotation=90 if len(images) > 8 else 0, fontsize=7 if len(images) > 20 else 9)
    ax.set_ylabel("PSNR (dB)")
    shown = f"{dataset} x{scale}" + ("" if degradation is None else f", {degradation}")
    ax.set_title(f"{shown}: PSNR per image ({'Y' if channel == 'y' else 'RGB'})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # Agg, for this figure alone
    return write_bytes(path, buf.getvalue())


def comparison_crops(results: EvalResults, out: Path, crop: int = 64, zoom: int = 4) -> list[Path]:
    """For the images whose outputs `evaluate` kept: the same crop, method by method, then HR, nearest-enlarged."""
    evaluated = [Method.parse(m) for m in dict.fromkeys(r["method"] for r in results.results)]
    interpolations = [m for m in evaluated if m.interpolation]
    first = [m for m in interpolations if m.label == "bilinear"] or interpolations[:1]
    models = [m for m in evaluated if m.model]
    labels = [
        m.label for m in (first + models[:2] if models else evaluated[:3])
    ]  # e.g. bilinear | model | model+correct
    channel = results.results[0]["channel"]
    scores = {
        (r["dataset"], r["scale"], r.get("degradation"), r["image"], r["method"]): r["psnr"]
        for r in results.per_image
        if r["channel"] == channel
    }
    written = []
    for group, kept in results.outputs.items():
        dataset, scale = group[0], group[1]
        degradation = group[2] if len(group) > 2 else None
        for image in kept:
            panels = [
                (
                    f"{label}  {scores[(dataset, scale, degradation, image['name'], label)]:.2f} dB",
                    image["methods"][label],
                )
                for label in labels
                if label in image["methods"]
            ]
            panels.append(("HR", image["hr"]))
            buf = io.BytesIO()
            crop_strip(panels, crop, zoom).save(buf, format="PNG")
            written.append(
                write_bytes(out / f"crops_{_name(dataset, scale, degradation)}_{image['name']}.png", buf.getvalue())
            )
    return written


def crop_strip(
    panels: list[tuple[str, np.ndarray]], crop: int, zoom: int, corner: tuple[int, int] | None = None
) -> Image.Image:
    """Label above each panel; the crop's top-left is `corner`, by default where the last panel (HR)
    has most detail."""
    y0, x0 = corner if corner is not None else busiest_window(panels[-1][1], crop)
    size = crop * zoom
    label_h = 20
    canvas = Image.new("RGB", (len(panels) * (size + 6) + 6, size + label_h + 8), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    for k, (label, img) in enumerate(panels):
        part = img[y0 : y0 + crop, x0 : x0 + crop]
        if part.dtype == np.uint16:
            part = np.floor(part / 257.0 + 0.5).astype(np.uint8)
        tile = Image.fromarray(part).convert("RGB").resize((size, size), Image.Resampling.NEAREST)
        x = 6 + k * (size + 6)
        canvas.paste(tile, (x, label_h + 2))
        draw.text((x + 2, 3), label, fill="black", font=font)
    return canvas


def busiest_window(img: np.ndarray, crop: int) -> tuple[int, int]:
    """Top-left corner of the crop x crop window with the largest mean gradient, searched on a coarse grid."""
    g = img.astype(np.float32)
    g = g.mean(axis=2) if g.ndim == 3 else g
    if g.shape[0] <= crop or g.shape[1] <= crop:
        return 0, 0
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1]
    # integral image: the sum over any window in O(1)
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, crop // 4)
    ys = np.arange(0, energy.shape[0] - crop + 1, step)
    xs = np.arange(0, energy.shape[1] - crop + 1, step)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    sums = integral[yy + crop, xx + crop] - integral[yy, xx + crop] - integral[yy + crop, xx] + integral[yy, xx]
    iy, ix = np.unravel_index(np.argmax(sums), sums.shape)
    return int(ys[iy]), int(xs[ix])
