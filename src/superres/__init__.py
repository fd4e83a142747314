"""superres: image super-resolution: bundled models, the checkpoints people hold, exact tiling, one API and CLI.

import superres
model = superres.load_model("path/to/weights.safetensors")
big = superres.upscale(image, model=model)           # numpy array or PIL image in, same out
lr = superres.imresize(image, 1 / 4)                  # MATLAB-exact bicubic
"""

from superres.api import ImageUpscaler, upscale
from superres.errors import (
    BackendError,
    CheckpointError,
    ConfigError,
    ImageError,
    SuperresError,
    UnknownModelError,
    VideoError,
)
from superres.evaluation.metrics import psnr, ssim
from superres.imaging.color import rgb_to_y
from superres.imaging.io import Picture, read_image, write_image
from superres.imaging.resize import imresize
from superres.inference.correction import DEFAULT_THRESHOLD, correct
from superres.inference.options import UpscaleOptions
from superres.inference.sizes import OutputSize
from superres.inference.upscaler import Upscaler
from superres.models import (
    EDSR,
    MDSR,
    EDSRConfig,
    MDSRConfig,
    ModelHandle,
    SRNet,
    create_model,
    init_from,
    list_models,
    load_model,
    save_weights,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLD",
    "EDSR",
    "MDSR",
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "EDSRConfig",
    "ImageError",
    "ImageUpscaler",
    "MDSRConfig",
    "ModelHandle",
    "OutputSize",
    "Picture",
    "SRNet",
    "SuperresError",
    "UnknownModelError",
    "UpscaleOptions",
    "Upscaler",
    "VideoError",
    "correct",
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
