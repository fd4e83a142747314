"""Named architectures (presets) and the pretrained models that ship inside the package.

`create_model("edsr-baseline", scale=4)` builds an untrained network; `load_model` (in
checkpoints.py) also resolves the names of bundled weights listed in PRETRAINED.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from superres.errors import UnknownModelError
from superres.models.edsr import EDSR, EDSRConfig

# name -> architecture settings (scale and colours are chosen when the model is built)
PRESETS: dict[str, dict] = {
    "edsr": dict(n_feats=256, n_resblocks=32, res_scale=0.1),  # the paper's large model, 40.7M params at x2
    "edsr-baseline": dict(n_feats=64, n_resblocks=16, res_scale=1.0),  # the paper's baseline, 1.37M at x2
    "edsr-medium": dict(n_feats=48, n_resblocks=12, res_scale=1.0),  # the bundled models, ~0.6M params
    "edsr-small": dict(n_feats=32, n_resblocks=8, res_scale=1.0),  # CPU-friendly, ~0.2M params
    "edsr-tiny": dict(n_feats=16, n_resblocks=4, res_scale=1.0),  # for tests and quick experiments
}


@dataclass(frozen=True)
class Pretrained:
    """A weights file bundled in superres/weights, as listed in weights/manifest.json."""

    name: str
    file: str
    scale: int
    arch: str  # the preset it was trained as
    description: str
    default: bool = False  # the model `load_model(scale=S)` returns

    def path(self) -> Path:
        return Path(str(resources.files("superres.weights").joinpath(self.file)))


def _read_manifest() -> dict[str, Pretrained]:
    """Bundled models from weights/manifest.json (absent: none)."""
    manifest = resources.files("superres.weights").joinpath("manifest.json")
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text())["models"]
    return {e["name"]: Pretrained(**e) for e in entries}


def bundled_results() -> list[dict]:
    """The `superres eval --json` results measured on the bundled models (weights/eval.json), if present."""
    path = resources.files("superres.weights").joinpath("eval.json")
    return json.loads(path.read_text())["results"] if path.is_file() else []


PRETRAINED: dict[str, Pretrained] = _read_manifest()


def list_models(pretrained: bool = False) -> list[str]:
    """Preset names, or with pretrained=True the names of bundled weights."""
    return sorted(PRETRAINED) if pretrained else sorted(PRESETS)


def default_model_name(scale: int) -> str | None:
    """The bundled model used when none is named, or None if no weights ship for this scale."""
    for entry in PRETRAINED.values():
        if entry.default and entry.scale == scale:
            return entry.name
    return None


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(choices)}"


def preset_config(name: str, scale: int = 2, n_colors: int = 3, **overrides) -> EDSRConfig:
    if name not in PRESETS:
        raise UnknownModelError(f"unknown model '{name}'{suggest(name, list(PRESETS) + list(PRETRAINED))}")
    return replace(EDSRConfig(scale=scale, n_colors=n_colors, **PRESETS[name]), **overrides)


def create_model(name: str, scale: int = 2, n_colors: int = 3, **overrides) -> EDSR:
    """An untrained model of a named architecture, e.g. create_model('edsr-baseline', scale=3)."""
    return EDSR(preset_config(name, scale=scale, n_colors=n_colors, **overrides))
