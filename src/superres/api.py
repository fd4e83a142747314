"""The functions most users need, on numpy arrays and PIL images, and the per-picture pipeline the CLI uses."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from superres.correction import DEFAULT_THRESHOLD, correct_strips
from superres.errors import ConfigError, UnknownModelError
from superres.imageio import Picture, PictureStream, from_pil, to_pil
from superres.inference import Upscaler, upscale_picture_stream
from superres.models.checkpoints import load_model
from superres.models.edsr import EDSR
from superres.models.registry import default_model_name
from superres.resize import output_shape_for, imresize


def nearest_trained_scale(factor: float) -> int:
    """The bundled default scale to run before resizing to `factor`: the smallest >= factor, else the largest."""
    available = [s for s in (2, 3, 4) if default_model_name(s)]
    if not available:
        raise UnknownModelError("no bundled models; give a model file for --outscale")
    above = [s for s in available if s >= factor - 1e-9]
    return min(above) if above else max(available)


class ImageUpscaler:
    """Everything `superres upscale` does to one picture, configured once and applied to many.

    model: an EDSR, a bundled name or preset, a weights path (.safetensors/.pt/.pth/.onnx), or None for
    the bundled default of the scale; method: an interpolation instead. outscale: any final factor (the
    model's output is resized to it with the MATLAB bicubic). correct: the correction threshold (gray
    levels) or None. The rest go to `Upscaler` (device, precision, tiling, self-ensemble).
    """

    def __init__(self, scale: int | None = None, model: EDSR | str | os.PathLike | None = None,
                 method: str | None = None, outscale: float | None = None, correct: float | None = None,
                 device: str = "auto", precision: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None, self_ensemble: bool = False, backend: str | None = None) -> None:
        if model is not None and method is not None:
            raise ConfigError("give a model or a method, not both")
        if outscale is not None and not outscale > 0:
            raise ConfigError(f"outscale must be > 0, got {outscale}")
        self.method, self.outscale = method, outscale
        self.runner: Upscaler | None = None
        if method is not None:
            if scale is None and outscale is None:
                raise ConfigError("an interpolation method needs a scale")
            self.scale = scale
            if correct is not None:
                raise ConfigError("the correction applies to model outputs; it needs a model, not a method")
        else:
            if model is None and scale is None:  # the bundled model: x2 unless an outscale says otherwise
                scale = nearest_trained_scale(outscale) if outscale is not None else 2
            backend = backend or ("onnxruntime" if str(model).endswith(".onnx") else "torch")
            if backend == "onnxruntime":
                from superres.onnx import OnnxUpscaler

                if model is None or isinstance(model, EDSR):
                    raise ConfigError("the onnxruntime backend needs an .onnx file (superres export --format onnx)")
                self.runner = OnnxUpscaler(model, tile=tile, overlap=tile_overlap, self_ensemble=self_ensemble)
                if scale is not None and self.runner.scale != scale:
                    raise ConfigError(f"{model} upscales x{self.runner.scale}, not x{scale}")
            elif backend == "torch":
                net = model if isinstance(model, EDSR) else load_model(model, scale=scale)
                self.runner = Upscaler(net, device=device, precision=precision, tile=tile, overlap=tile_overlap,
                                       self_ensemble=self_ensemble)
            else:
                raise ConfigError(f"backend must be 'torch' or 'onnxruntime', got '{backend}'")
            self.scale = self.runner.scale
        if correct is not None and correct < 0:
            raise ConfigError(f"the correction threshold must be >= 0, got {correct}")
        self.threshold = correct

    @property
    def factor(self) -> float:
        """The overall enlargement."""
        return self.outscale if self.outscale is not None else float(self.scale)

    def __call__(self, picture: Picture) -> Picture:
        return self.stream(picture).collect()

    def stream(self, picture: Picture) -> PictureStream:
        """The upscaled picture as a PictureStream, made band by band while it is written (see write_image);
        with --outscale it is made whole, as the final resize needs all of it."""
        if self.method is not None and self.outscale is not None:
            return upscale_picture_stream(picture, self.outscale, method=self.method)
        result = upscale_picture_stream(picture, self.scale, model=self.runner, method=self.method)
        if self.threshold is not None:
            result.strips = correct_strips(result.strips, picture.pixels, self.scale, self.threshold)
        if self.outscale is not None and self.outscale != self.scale:
            whole = result.collect()
            shape = output_shape_for(picture.size, self.outscale)
            pixels = imresize(whole.pixels, output_shape=shape)
            alpha = None if whole.alpha is None else imresize(whole.alpha, output_shape=shape)
            result = PictureStream(shape[0], shape[1], [pixels], alpha, whole.icc_profile)
        return result


def upscale(image, scale: int | None = None, model: EDSR | str | os.PathLike | None = None,
            method: str | None = None, **options):
    """Upscale an image with a model (an EDSR, a bundled name or a weights path) or an interpolation method.

    image: numpy uint8/uint16 array (H, W), (H, W, 3) or (H, W, 4) (last channel alpha), or a PIL image.
    With neither model nor method, the bundled default model for `scale` is used. Options: outscale,
    correct (threshold, e.g. superres.DEFAULT_THRESHOLD), device, precision, tile, tile_overlap,
    self_ensemble, backend. Returns the same kind of object: an array of the same dtype and channels,
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


__all__ = ["DEFAULT_THRESHOLD", "ImageUpscaler", "nearest_trained_scale", "upscale"]
