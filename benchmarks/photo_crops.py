"""Side-by-side crops of one real JPEG photo enlarged x4: bicubic, superres's default (`--denoise auto`, which runs the
photo model at the damage it reads), SPAN x4 (a clean DIV2K model, as a user would otherwise pick), Real-ESRGAN
x4plus (the GAN most people run on old photos) and, where staged in --general, Real-ESRGAN's compact
realesr-general-x4v3 at its default `-dn 0.5` (benchmarks/ncnn_srvgg.py; docs/photos.md). There is no ground truth
at x4 of a real photo: the crops show what each method does with the file's JPEG blocks and noise. Writes
docs/photo-crops.png and prints the seconds each method took (fp32, torch, this machine).

    python benchmarks/photo_crops.py [--photo PATH] [--models ../shared/models] [--general /work/staging/models]
                                     [-o docs/photo-crops.png]

The default photo is scikit-image's rocket.jpg (NASA, public domain; a real JPEG as published, 640x427).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import superres
from common import realesr_general_dn
from superres.api import ImageUpscaler
from superres.imaging.io import read_image
from superres.inference.denoise import PhotoPair

CROP = (128, 288, 80, 80)  # y, x, height, width of the LR region shown (in the photo's pixels; on the JPEG grid)
MARGIN = 16  # the methods run on the region with this much context around it (a multiple of 8: the grid stays)
ZOOM = 4


def default_photo() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "rocket.jpg"


def main(photo: Path, models: Path, general: Path, out: Path) -> int:
    picture = read_image(photo)
    pair = PhotoPair.bundled()
    assert pair is not None, "the bundled default has a photo model"
    choice = pair.choose(picture)
    print(f"{photo.name}: {picture.size[1]}x{picture.size[0]}, {choice.describe()}")
    y, x, h, w = CROP
    m = MARGIN
    region = replace(picture, pixels=picture.pixels[y - m : y + h + m, x - m : x + w + m])
    methods = {
        "bicubic": None,
        f"superres auto ({choice.strength:g})": dict(denoise="auto"),
        "superres clean": dict(denoise=0),
        "SPAN x4": dict(model=str(models / "span_x4_ch48.safetensors"), denoise=None),
        "Real-ESRGAN x4plus": dict(model=str(models / "RealESRGAN_x4plus.safetensors"), denoise=None),
    }
    compact = realesr_general_dn(general)
    if compact is not None:
        methods["realesr-general-x4v3 -dn 0.5"] = dict(model=compact, denoise=None)
    else:
        print(f"realesr-general-x4v3 and its wdn twin are not staged in {general}: left out")
    tiles = []
    for name, options in methods.items():
        t0 = time.perf_counter()
        if options is None:
            sr = superres.imresize(region.pixels, ZOOM)
        else:  # auto runs at what it read on the whole photo, not on the region
            upscaler = ImageUpscaler(scale=ZOOM, precision="fp32", backend="torch", **options)
            sr = upscaler.stream(region, denoise=choice if options.get("denoise") == "auto" else None).collect().pixels
        seconds = time.perf_counter() - t0
        print(f"{name:<24} {seconds:7.2f} s for {region.size[1]}x{region.size[0]} px")
        tiles.append((name, np.asarray(sr)[m * ZOOM : (m + h) * ZOOM, m * ZOOM : (m + w) * ZOOM]))
    lr = picture.pixels[y : y + h, x : x + w]
    nearest = np.repeat(np.repeat(lr, ZOOM, axis=0), ZOOM, axis=1)
    tiles.insert(0, ("input (nearest)", nearest))
    label = 18
    sheet = Image.new("RGB", (len(tiles) * (w * ZOOM + 4), h * ZOOM + label), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, tile) in enumerate(tiles):
        left = i * (w * ZOOM + 4)
        sheet.paste(Image.fromarray(np.ascontiguousarray(tile)), (left, label))
        draw.text((left + 4, 3), name, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=None, help="a JPEG photo (default: scikit-image's rocket.jpg)")
    parser.add_argument("--models", type=Path, default=Path("../shared/models"))
    parser.add_argument("--general", type=Path, default=Path("/work/staging/models"), help="realesr-general's files")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/photo-crops.png"))
    args = parser.parse_args()
    raise SystemExit(main(args.photo or default_photo(), args.models, args.general, args.output))
