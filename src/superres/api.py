"""The functions most users need, on numpy arrays and PIL images."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from superres.errors import ConfigError
from superres.imageio import Picture, from_pil, to_pil
from superres.inference import upscale_picture
from superres.models.checkpoints import load_model
from superres.models.edsr import EDSR


def upscale(image, scale: int | None = None, model: EDSR | str | os.PathLike | None = None,
            method: str | None = None):
    """Upscale an image with a model (an EDSR, a bundled name or a weights path) or an interpolation method.

    image: numpy uint8/uint16 array (H, W), (H, W, 3) or (H, W, 4) (last channel alpha), or a PIL image.
    With neither model nor method, the bundled default model for `scale` is used.
    Returns the same kind of object: an array of the same dtype and channels, or a PIL image.
    """
    if model is not None and method is not None:
        raise ConfigError("give a model or a method, not both")
    if method is None and not isinstance(model, EDSR):
        model = load_model(model, scale=scale)
    if isinstance(image, Image.Image):
        return to_pil(upscale_picture(from_pil(image), scale, model, method))
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
        return upscale(arr[..., 0], scale, model, method)[..., None]
    else:
        raise ConfigError(f"images must be (H, W) or (H, W, 1|2|3|4), got shape {arr.shape}")
    out = upscale_picture(picture, scale, model, method)
    return out.pixels if out.alpha is None else np.dstack([out.pixels, out.alpha])
