"""The quick-start demo: shrink a photo that ships with scikit-image, upscale it back, score and show it;
with --photo, the same photo as a real one: shrunk and saved as a JPEG."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from superres.evaluation.benchmark import Method, run_method
from superres.evaluation.metrics import psnr, ssim
from superres.evaluation.report import busiest_window, crop_strip
from superres.imaging.degrade import degrade
from superres.imaging.files import write_bytes
from superres.imaging.io import Picture, write_image
from superres.imaging.quality import jpeg_file_quality
from superres.imaging.resize import imresize
from superres.inference.correction import DEFAULT_THRESHOLD
from superres.inference.denoise import DenoiseChoice, PhotoPair
from superres.models.handle import ModelHandle

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass
class DemoResult:
    method: str
    psnr_y: float
    ssim_y: float
    seconds: float
    path: Path


def load_photo(name: str) -> np.ndarray:
    """uint8 (H, W, 3) from skimage.data (bundled with scikit-image, no download)."""
    from skimage import data

    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {', '.join(PHOTOS)}")
    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def run_demo(
    out_dir: str | Path,
    model: ModelHandle | None,
    scale: int = 2,
    photo: str = "astronaut",
    overwrite: bool = True,
    precision: str = "auto",
) -> list[DemoResult]:
    """Write hr/lr/bicubic/bilinear(/model) PNGs and comparison.png into out_dir; return Y-PSNR per method.
    The model runs at `scale` with `precision` ('auto': as `superres upscale` runs it)."""
    out = Path(out_dir)
    hr = load_photo(photo)
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = imresize(hr, 1 / scale, method="bicubic")
    write_image(out / "hr.png", Picture(hr), overwrite=overwrite)
    write_image(out / "lr.png", Picture(lr), overwrite=overwrite)
    results: list[DemoResult] = []
    outputs: dict[str, np.ndarray] = {}
    names = ["bilinear", "bicubic"] + (["model", "model+correct"] if model is not None else [])
    cache: dict = {}  # model and model+correct share one network run
    for name in names:
        sr, seconds = run_method(
            Method.parse(name),
            lr,
            scale,
            None if model is None else (model, scale),
            DEFAULT_THRESHOLD,
            cache,
            precision,
            backend="auto",  # as `superres upscale` runs it (eval's reference is PyTorch)
        )
        path = write_image(out / f"{name}.png", Picture(sr), overwrite=overwrite)
        results.append(DemoResult(name, psnr(sr, hr, shave=scale), ssim(sr, hr, shave=scale), seconds, path))
        outputs[name] = sr
    comparison = side_by_side(hr, lr, outputs, {r.method: r.psnr_y for r in results}, scale)
    buf = io.BytesIO()
    comparison.save(buf, format="PNG")
    write_bytes(out / "comparison.png", buf.getvalue())
    return results


def run_photo_demo(
    out_dir: str | Path,
    pair: PhotoPair,
    scale: int = 2,
    photo: str = "astronaut",
    quality: int = 70,
    overwrite: bool = True,
    precision: str = "auto",
) -> tuple[list[DemoResult], DenoiseChoice]:
    """A real-photo case: the photo shrunk x`scale` and saved as a JPEG of `quality` (lr.jpg), upscaled by
    bicubic, the clean model and `--denoise auto`; writes each, and comparison.png. Returns Y-PSNR per method
    against the original and what auto chose."""
    out = Path(out_dir)
    hr = load_photo(photo)
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    lr = degrade(hr, scale, f"jpeg:{quality}")
    assert lr.jpeg is not None  # a jpeg:Q degradation ends with the JPEG file
    write_image(out / "hr.png", Picture(hr), overwrite=overwrite)
    write_bytes(out / "lr.jpg", lr.jpeg, overwrite=overwrite)
    choice = pair.choose(Picture(lr.pixels, jpeg_quality=jpeg_file_quality(lr.jpeg)))
    runs = {"bicubic": None, "clean model": pair.clean, f"auto (denoise {choice.strength:g})": pair.at(choice.setting)}
    results: list[DemoResult] = []
    outputs: dict[str, np.ndarray] = {}
    for name, net in runs.items():
        method = Method.parse("bicubic") if net is None else Method(name, model=name)
        at_scale = None if net is None else (net, scale)
        sr, seconds = run_method(method, lr.pixels, scale, at_scale, precision=precision, backend="auto")
        path = write_image(out / f"{name.split(' ')[0]}.png", Picture(sr), overwrite=overwrite)
        results.append(DemoResult(name, psnr(sr, hr, shave=scale), ssim(sr, hr, shave=scale), seconds, path))
        outputs[name] = sr
    comparison = side_by_side(
        hr,
        lr.pixels,
        outputs,
        {r.method: r.psnr_y for r in results},
        scale,
        input_label=f"LR, JPEG quality {quality} (nearest)",
    )
    buf = io.BytesIO()
    comparison.save(buf, format="PNG")
    write_bytes(out / "comparison.png", buf.getvalue())
    return results, choice


def side_by_side(
    hr: np.ndarray,
    lr: np.ndarray,
    outputs: dict[str, np.ndarray],
    scores: dict[str, float],
    scale: int,
    crop: int = 80,
    zoom: int = 3,
    input_label: str = "LR input (nearest)",
) -> Image.Image:
    """The whole photo with the zoomed region marked, above a row of zoomed crops:
    LR (nearest) | each method | original, labelled with Y-PSNR."""
    panels = [(input_label, imresize(lr, scale, method="nearest"))]
    panels += [(f"{name} {scores[name]:.2f} dB", img) for name, img in outputs.items()]
    panels.append(("original", hr))
    y0, x0 = busiest_window(hr, crop)
    strip = crop_strip(panels, crop, zoom, corner=(y0, x0))
    overview = Image.fromarray(hr)
    ratio = min(1.0, 360 / overview.height)
    overview = overview.resize(
        (round(overview.width * ratio), round(overview.height * ratio)), Image.Resampling.BICUBIC
    )
    ImageDraw.Draw(overview).rectangle(
        [x0 * ratio, y0 * ratio, (x0 + crop) * ratio, (y0 + crop) * ratio], outline=(255, 0, 0), width=3
    )
    canvas = Image.new("RGB", (strip.width, overview.height + strip.height + 6), "white")
    canvas.paste(overview, ((strip.width - overview.width) // 2, 4))
    canvas.paste(strip, (0, overview.height + 6))
    return canvas
