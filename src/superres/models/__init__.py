"""Super-resolution networks, one file per architecture family, and weights files.

Everything outside this package holds a `ModelHandle` (handle.py): scales, colours, pixel range, receptive
radius, precisions and `run(x, scale)`. A family registers itself in its own file (family.py explains how).
"""

from superres.models import carn, edsr, imdn, mdsr, mspan, rlfn, rrdbnet, smfanet, span, srvgg, swinir  # noqa: F401 - registers them
from superres.models.base import SRNet, count_parameters
from superres.models.checkpoints import init_from, load_model, load_weights, save_weights
from superres.models.edsr import EDSR, EDSRConfig
from superres.models.family import Family, families, register_family
from superres.models.handle import ModelHandle, as_handle
from superres.models.mdsr import MDSR, MDSRConfig
from superres.models.registry import PRETRAINED, create_model, list_models, presets
from superres.models.summary import format_summary, summarize

__all__ = [
    "EDSR",
    "MDSR",
    "PRETRAINED",
    "EDSRConfig",
    "Family",
    "MDSRConfig",
    "ModelHandle",
    "SRNet",
    "as_handle",
    "count_parameters",
    "create_model",
    "families",
    "format_summary",
    "init_from",
    "list_models",
    "load_model",
    "load_weights",
    "presets",
    "register_family",
    "save_weights",
    "summarize",
]
