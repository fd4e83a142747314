"""The functions most users need, on numpy arrays and PIL images, and the per-picture pipeline the CLI uses."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import numpy as np
from PIL import Image

from superres.inference.correction import DEFAULT_THRESHOLD, correct_strips
from superres.inference.denoise import DenoiseChoice, PhotoPair, auto_strength, parse_denoise
from superres.errors import ConfigError
from superres.imaging.io import Picture, PictureStream, from_pil, to_pil
from superres.inference.sizes import OutputSize, network_scale
from superres.inference.upscaler import Upscaler, resize_picture, upscale_picture_stream
from superres.models.base import SRNet
from superres.models.checkpoints import load_model
from superres.models.registry import default_scales
from superres.imaging.resize import imresize


log = logging.getLogger(__name__)


class ImageUpscaler:
    """Everything `superres upscale` does to one picture, configured once and applied to many.

    scale: any factor > 0 (default 2, or the model's scale for a single-scale model), or size=(width,
    height), or width/height alone (aspect kept). model: an SRNet, a bundled name or preset, a weights path
    (.safetensors/.pt/.pth/.onnx), or None for the bundled default; method: an interpolation instead. The
    network runs at the smallest of its scales at or above the needed factor (else its largest), and its
    output is resized to the exact size with the MATLAB bicubic. correct: the correction threshold (gray
    levels) or None. The rest go to `Upscaler` (device, precision, tiling, self-ensemble). outscale, the
    former name of the final factor, overrides scale.

    denoise: 'auto' (default), a strength from 0 (the clean model) to 1 (its photo model), or None (off).
    Strengths between blend the two networks' weights; auto reads the strength off each picture (its JPEG
    quality and noise level, inference.denoise). It applies to bundled models that have a photo counterpart;
    auto leaves any other model alone, a strength above 0 is an error there. A picture no larger than the
    output is restored without enlarging (the network at its smallest scale, then resized) when the strength
    is above 0, and only resized otherwise.
    """

    def __init__(
        self,
        scale: float | None = None,
        model: SRNet | str | os.PathLike | None = None,
        method: str | None = None,
        outscale: float | None = None,
        correct: float | None = None,
        size: tuple[int, int] | None = None,
        width: int | None = None,
        height: int | None = None,
        device: str = "auto",
        precision: str | None = "auto",
        tile: int | None = None,
        tile_overlap: int | None = None,
        self_ensemble: bool = False,
        backend: str | None = None,
        denoise: float | str | None = "auto",
    ) -> None:
        if model is not None and method is not None:
            raise ConfigError("give a model or a method, not both")
        if outscale is not None:  # the former API: `scale` chose the network, `outscale` the final factor
            scale = outscale
        if size is not None:
            if width is not None or height is not None:
                raise ConfigError("give the output size or a width/height, not both")
            width, height = size
        if scale is not None and (width is not None or height is not None):
            raise ConfigError("give a scale or an output size, not both")
        self.method = method
        self.net: SRNet | None = None
        self.pair: PhotoPair | None = None
        self.denoise = parse_denoise(denoise) if method is None else None
        self._runners: dict[tuple[int, float], Upscaler] = {}
        self._options = dict(
            device=device, precision=precision, tile=tile, overlap=tile_overlap, self_ensemble=self_ensemble
        )
        if method is not None:
            if scale is None and width is None and height is None:
                raise ConfigError("an interpolation method needs a scale or an output size")
            if correct is not None:
                raise ConfigError("the correction applies to model outputs; it needs a model, not a method")
            self.scales: tuple[int, ...] = ()
        else:
            backend = backend or ("onnxruntime" if str(model).endswith(".onnx") else "torch")
            if backend == "onnxruntime":
                from superres.inference.onnx import OnnxUpscaler

                if model is None or isinstance(model, SRNet):
                    raise ConfigError("the onnxruntime backend needs an .onnx file (superres export --format onnx)")
                runner = OnnxUpscaler(model, tile=tile, overlap=tile_overlap, self_ensemble=self_ensemble)
                self._runners[(runner.scale, 0.0)] = runner  # the file's one scale
                self.scales = (runner.scale,)
            elif backend == "torch":
                hint = None  # no model: the bundled default that has the scale a factor needs (any for a size)
                if model is None and scale is not None and default_scales():
                    hint = network_scale(default_scales(), scale)
                self.net = model if isinstance(model, SRNet) else load_model(model, scale=hint)
                self.scales = self.net.scales
                if self.denoise is not None and (model is None or isinstance(model, str)):
                    self.pair = PhotoPair.bundled(model, clean=self.net)
            else:
                raise ConfigError(f"backend must be 'torch' or 'onnxruntime', got '{backend}'")
        if isinstance(self.denoise, float) and self.denoise > 0 and self.pair is None:
            raise ConfigError(
                f"denoise {self.denoise:g} needs a bundled model with a photo counterpart (the default "
                f"has one); {model if model is not None else 'this model'} has none"
            )
        if scale is None and width is None and height is None:
            scale = 2 if len(self.scales) != 1 else self.scales[0]
        self.size = OutputSize(float(scale) if scale is not None else None, width, height)
        if correct is not None and correct < 0:
            raise ConfigError(f"the correction threshold must be >= 0, got {correct}")
        self.threshold = correct

    def upscaler(self, scale: int, strength: float = 0.0) -> Upscaler:
        """The network (blended at a denoise strength) ready to run at one of its scales, made once each."""
        key = (scale, strength)
        if key not in self._runners:
            net = self.pair.at(strength) if self.pair is not None else self.net
            self._runners[key] = Upscaler(net, scale, **self._options)
        return self._runners[key]

    def choose_denoise(self, picture: Picture) -> DenoiseChoice:
        """The denoise strength this upscaler uses for a picture (0 where there is no photo model)."""
        if self.pair is None or self.denoise is None:
            return DenoiseChoice(0.0)
        return auto_strength(picture) if self.denoise == "auto" else DenoiseChoice(float(self.denoise))

    def __call__(self, picture: Picture) -> Picture:
        return self.stream(picture).collect()

    def stream(self, picture: Picture, denoise: DenoiseChoice | None = None) -> PictureStream:
        """The upscaled picture as a PictureStream, made band by band while it is written (see write_image).
        Where the network's scale is not the exact output size, the output is made whole and resized.
        denoise: the strength to use (default: choose_denoise's)."""
        shape = self.size.shape_for(picture.size)
        if self.method is not None:
            return resize_picture(picture, shape, self.method, self.size.factor)
        strength = (denoise or self.choose_denoise(picture)).strength
        h, w = picture.size
        needed = max(shape[0] / h, shape[1] / w)
        if needed <= 1 and strength == 0:  # nothing to restore or enlarge: the antialiased bicubic does it all
            log.info("output %dx%d is no larger than the input; resizing with bicubic", shape[1], shape[0])
            return resize_picture(picture, shape, "bicubic")
        scale = network_scale(self.scales, needed)  # below 1: the smallest scale, then resized down
        exact = shape == (h * scale, w * scale)
        source = picture if exact else replace(picture, alpha=None)  # alpha is resized straight to the size below
        result = upscale_picture_stream(source, scale, model=self.upscaler(scale, strength))
        if self.threshold is not None and strength > 0:
            log.info(
                "the correction is skipped for a denoised picture: it would pull the output back toward "
                "the noise and JPEG blocks of the input"
            )
        elif self.threshold is not None:
            result.strips = correct_strips(result.strips, picture.pixels, scale, self.threshold)
        if not exact:
            whole = result.collect()
            pixels = imresize(whole.pixels, output_shape=shape)
            alpha = None if picture.alpha is None else imresize(picture.alpha, output_shape=shape)
            result = PictureStream(shape[0], shape[1], [pixels], alpha, whole.icc_profile)
        return result


def upscale(
    image,
    scale: float | None = None,
    model: SRNet | str | os.PathLike | None = None,
    method: str | None = None,
    **options,
):
    """Upscale an image with a model (an SRNet, a bundled name or a weights path) or an interpolation method.

    image: numpy uint8/uint16 array (H, W), (H, W, 3) or (H, W, 4) (last channel alpha), or a PIL image.
    scale: any factor (default 2); or size=(width, height), width=W or height=H instead. With neither
    model nor method, the bundled default model is used. Options: denoise ('auto' by default, or 0-1; see
    ImageUpscaler), correct (threshold, e.g. superres.DEFAULT_THRESHOLD), device, precision ('auto' by
    default), tile, tile_overlap, self_ensemble, backend. Returns the same kind of object: an array of the same dtype and channels,
    or a PIL image.
    """
    runner = ImageUpscaler(scale=scale, model=model, method=method, **options)
    if isinstance(image, Image.Image):
        return to_pil(runner(from_pil(image)))
    arr = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"images must be uint8 or uint16 arrays, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 4:
        picture = Picture(arr[..., :3], arr[..., 3])
    elif arr.ndim == 3 and arr.shape[2] == 2:
        picture = Picture(arr[..., 0], arr[..., 1])
    elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        picture = Picture(arr)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        return upscale(arr[..., 0], scale, model, method, **options)[..., None]
    else:
        raise ConfigError(f"images must be (H, W) or (H, W, 1|2|3|4), got shape {arr.shape}")
    out = runner(picture)
    return out.pixels if out.alpha is None else np.dstack([out.pixels, out.alpha])


__all__ = ["DEFAULT_THRESHOLD", "ImageUpscaler", "OutputSize", "network_scale", "upscale"]
