"""superres: image super-resolution with EDSR and MDSR.

import superres
model = superres.load_model("path/to/weights.safetensors")
big = superres.upscale(image, model=model)           # numpy array or PIL image in, same out
lr = superres.imresize(image, 1 / 4)                  # MATLAB-exact bicubic
"""

from superres.api import ImageUpscaler, upscale
from superres.inference.correction import DEFAULT_THRESHOLD, correct
from superres.inference.upscaler import Upscaler
from superres.errors import CheckpointError, ConfigError, ImageError, SuperresError, UnknownModelError
from superres.imaging.io import Picture, read_image, write_image
from superres.imaging.color import rgb_to_y
from superres.evaluation.metrics import psnr, ssim
from superres.models import (
    EDSR,
    MDSR,
    EDSRConfig,
    MDSRConfig,
    SRNet,
    create_model,
    init_from,
    list_models,
    load_model,
    save_weights,
)
from superres.inference.sizes import OutputSize
from superres.imaging.resize import imresize

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLD",
    "EDSR",
    "EDSRConfig",
    "MDSR",
    "MDSRConfig",
    "OutputSize",
    "SRNet",
    "ImageUpscaler",
    "Upscaler",
    "correct",
    "CheckpointError",
    "ConfigError",
    "ImageError",
    "Picture",
    "SuperresError",
    "UnknownModelError",
    "create_model",
    "imresize",
    "init_from",
    "list_models",
    "load_model",
    "psnr",
    "read_image",
    "rgb_to_y",
    "save_weights",
    "ssim",
    "upscale",
    "write_image",
]
