"""EDSR models: architecture, presets, and weights files."""

from superres.models.checkpoints import init_from_x2, load_model, load_weights, save_weights
from superres.models.edsr import EDSR, EDSRConfig, count_parameters
from superres.models.registry import PRESETS, PRETRAINED, create_model, list_models
from superres.models.summary import format_summary, summarize

__all__ = [
    "EDSR", "EDSRConfig", "PRESETS", "PRETRAINED", "count_parameters", "create_model", "format_summary",
    "init_from_x2", "list_models", "load_model", "load_weights", "save_weights", "summarize",
]
