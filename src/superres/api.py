"""The functions most users need, on numpy arrays and PIL images, and the per-picture pipeline the CLI uses."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from superres.errors import ConfigError
from superres.imaging.io import Picture, PictureStream, from_pil, to_pil
from superres.imaging.resize import imresize
from superres.inference.backends import get_backend, same_device
from superres.inference.correction import DEFAULT_THRESHOLD, correct_strips
from superres.inference.denoise import AUTOS, DenoiseChoice, PhotoPair
from superres.inference.options import UpscaleOptions
from superres.inference.sizes import OutputSize, network_scale
from superres.inference.upscaler import Upscaler, resize_picture, upscale_picture_stream
from superres.inference.warm import WARM
from superres.models.base import SRNet
from superres.models.handle import ModelHandle, as_handle
from superres.models.registry import default_scales

log = logging.getLogger(__name__)


class ImageUpscaler:
    """Everything `superres upscale` does to one picture, configured once and applied to many.

    Takes an `UpscaleOptions`, or its fields as keywords (`ImageUpscaler(scale=2.5, tile=256)`), or both (the
    keywords change the options). The network runs at the smallest of its scales at or above the needed
    factor (else its largest), and its output is resized to the exact size with the MATLAB bicubic.

    denoise: 'auto' (default), 'auto+chain' (auto, and the strongest setting where the chain detector reads
    Real-ESRGAN's chain), a strength from 0 (the clean model) to 1 (its photo model), or None (off).
    Strengths between blend the two networks' weights; auto reads the strength off each picture (its JPEG
    quality and noise level, inference.denoise). It applies to bundled models that have a photo counterpart;
    auto leaves any other model alone, a strength above 0 is an error there. A picture no larger than the
    output is restored without enlarging (the network at its smallest scale, then resized) when the strength
    is above 0, and only resized otherwise.
    """

    def __init__(self, options: UpscaleOptions | None = None, /, **fields: Any) -> None:
        if options is not None and not isinstance(options, UpscaleOptions):
            raise ConfigError(
                f"ImageUpscaler takes an UpscaleOptions or keywords (e.g. scale=2.5), not {type(options).__name__}"
            )
        options = UpscaleOptions(**fields) if options is None else options.but(**fields) if fields else options
        self.options = options
        self.method = options.method
        self.net: ModelHandle | None = None
        self.pair: PhotoPair | None = None
        self.denoise = options.denoise
        if options.precision == "int8" and self.denoise is not None:  # int8 files exist for the clean model only
            if self.denoise not in AUTOS and float(self.denoise) > 0:
                raise ConfigError(f"denoise {self.denoise} needs fp32 or bf16: int8 runs a clean bundled model only")
            log.info("denoise is off under int8: the quantised files are of a clean bundled model only")
            self.denoise = None
        self._runners: dict[tuple[int, float | tuple[float, float]], Upscaler] = {}
        self.scales: tuple[int, ...] = ()
        model = options.model
        if self.method is None:
            hint = None  # no model: the bundled default that has the scale a factor needs (any for a size)
            if model is None and options.scale is not None and default_scales():
                hint = network_scale(default_scales(), options.scale)
            self.net = as_handle(model) if isinstance(model, (ModelHandle, nn.Module)) else WARM.load(model, hint)
            self.scales = self.net.scales
            backend = get_backend(options.backend, self.net, options.device, options.precision)
            device, _ = backend.check(self.net, options.device, options.precision)  # refused here, not per picture
            if backend.name == "torch" and not same_device(self.net.device, device):
                self.net = self.net.copy_to(device)  # once, for every scale and strength; the caller's stays
            if options.denoise_model is not None:
                self.pair = PhotoPair(self.net, _handle(options.denoise_model))
            elif self.denoise is not None and (model is None or isinstance(model, str)) and self.net.onnx is None:
                self.pair = PhotoPair.bundled(model, clean=self.net)
        if isinstance(self.denoise, float) and self.denoise > 0 and self.pair is None:
            raise ConfigError(
                f"denoise {self.denoise:g} needs a bundled model with a photo counterpart (the default has one); "
                f"{model if model is not None else 'this model'} has none"
            )
        self.size = options.output or OutputSize(float(2 if len(self.scales) != 1 else self.scales[0]))
        self.threshold = options.correct

    def upscaler(self, scale: int, setting: float | tuple[float, float] = 0.0) -> Upscaler:
        """The network (at a denoise strength or damage, DenoiseChoice.setting) ready to run at one of its
        scales, made once each."""
        key = (scale, setting)
        if key not in self._runners:
            net = self.pair.at(setting) if self.pair is not None else self.net
            assert net is not None, "a method, not a model: resize_picture does the work"
            self._runners[key] = Upscaler(net, scale, **self.options.runner_options())
        return self._runners[key]

    def work(self, size: tuple[int, int]) -> int:
        """The network's estimated multiply-adds for a picture of `size` (height, width), before it runs: its
        parameters times the input's pixels (a convolution at the input's resolution uses each weight once
        per pixel; layers after the upsampling make this an underestimate of a few percent), times 8 with
        self-ensemble. 0 where no network runs (an interpolation method)."""
        if self.net is None:
            return 0
        passes = 8 if self.options.self_ensemble else 1
        return self.net.parameter_count * size[0] * size[1] * passes

    def choose_denoise(self, picture: Picture) -> DenoiseChoice:
        """The denoise strength this upscaler uses for a picture (0 where there is no photo model)."""
        if self.pair is None or self.denoise is None:
            return DenoiseChoice(0.0)
        return self.pair.choose(picture, self.denoise)

    def __call__(self, picture: Picture) -> Picture:
        return self.stream(picture).collect()

    def stream(
        self, picture: Picture, denoise: DenoiseChoice | None = None, cancel: threading.Event | None = None
    ) -> PictureStream:
        """The upscaled picture as a PictureStream, made band by band while it is written (see write_image).
        Where the network's scale is not the exact output size, the output is made whole and resized.
        denoise: the strength to use (default: choose_denoise's). cancel: an event that stops the network
        within one tile of being set (Upscaler.strips raises Cancelled)."""
        shape = self.size.shape_for(picture.size)
        if self.method is not None:
            return resize_picture(picture, shape, self.method, self.size.factor)
        choice = denoise or self.choose_denoise(picture)
        strength = choice.strength
        h, w = picture.size
        needed = max(shape[0] / h, shape[1] / w)
        if needed <= 1 and strength == 0:  # nothing to restore or enlarge: the antialiased bicubic does it all
            log.info("output %dx%d is no larger than the input; resizing with bicubic", shape[1], shape[0])
            return resize_picture(picture, shape, "bicubic")
        scale = network_scale(self.scales, needed)  # below 1: the smallest scale, then resized down
        exact = shape == (h * scale, w * scale)
        source = picture if exact else replace(picture, alpha=None)  # alpha is resized straight to the size below
        result = upscale_picture_stream(source, scale, model=self.upscaler(scale, choice.setting), cancel=cancel)
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


def _handle(model: ModelHandle | nn.Module | str | os.PathLike) -> ModelHandle:
    return as_handle(model) if isinstance(model, (ModelHandle, nn.Module)) else WARM.load(model)


def upscale(
    image,
    scale: float | None = None,
    model: ModelHandle | SRNet | str | os.PathLike | None = None,
    method: str | None = None,
    *,
    size: tuple[int, int] | None = None,
    options: UpscaleOptions | None = None,
    **fields: Any,
):
    """Upscale an image with a model (a handle, a bundled name or a weights path) or an interpolation method.

    image: numpy uint8/uint16 array (H, W), (H, W, 3) or (H, W, 4) (last channel alpha), or a PIL image.
    scale: any factor (default 2); or size=(width, height) (short for width=..., height=...), width=W or
    height=H instead. With neither model nor method, the bundled default model is used. Any other field of
    `UpscaleOptions` may be given as a keyword (denoise, correct, device, precision, backend, threads, tile,
    tile_overlap, self_ensemble), or a whole `options`. Returns the same kind of object: an array of the same
    dtype and channels, or a PIL image.
    """
    given = {k: v for k, v in dict(scale=scale, model=model, method=method).items() if v is not None}
    if size is not None:
        if "width" in fields or "height" in fields:
            raise ConfigError("give size=(width, height) or width/height, not both")
        given["width"], given["height"] = size
    runner = ImageUpscaler(options, **given, **fields)
    if isinstance(image, Image.Image):
        return to_pil(runner(from_pil(image)))
    arr: np.ndarray = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"images must be uint8 or uint16 arrays, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 4:
        picture = Picture(arr[..., :3], arr[..., 3])
    elif arr.ndim == 3 and arr.shape[2] == 2:
        picture = Picture(arr[..., 0], arr[..., 1])
    elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        picture = Picture(arr)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        return np.asarray(upscale(arr[..., 0], options=runner.options))[..., None]
    else:
        raise ConfigError(f"images must be (H, W) or (H, W, 1|2|3|4), got shape {arr.shape}")
    out = runner(picture)
    return out.pixels if out.alpha is None else np.dstack([out.pixels, out.alpha])


__all__ = ["DEFAULT_THRESHOLD", "ImageUpscaler", "OutputSize", "UpscaleOptions", "network_scale", "upscale"]
