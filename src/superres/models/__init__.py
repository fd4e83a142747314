"""Super-resolution networks (EDSR, MDSR), presets, and weights files. Everything outside this package
holds an `SRNet` and uses only its members (scales, colours, receptive radius, forward at a scale)."""

from superres.models.base import SRNet, count_parameters
from superres.models.checkpoints import build, init_from, load_model, load_weights, save_weights
from superres.models.edsr import EDSR, EDSRConfig
from superres.models.mdsr import MDSR, MDSRConfig
from superres.models.registry import PRESETS, PRETRAINED, create_model, list_models
from superres.models.summary import format_summary, summarize

__all__ = [
    "EDSR",
    "EDSRConfig",
    "MDSR",
    "MDSRConfig",
    "PRESETS",
    "PRETRAINED",
    "SRNet",
    "build",
    "count_parameters",
    "create_model",
    "format_summary",
    "init_from",
    "list_models",
    "load_model",
    "load_weights",
    "save_weights",
    "summarize",
]
