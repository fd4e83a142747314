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

from typing import Sequence

from superres.errors import ConfigError, UnknownModelError
from superres.models.base import SRNet
from superres.models.edsr import EDSR, EDSRConfig
from superres.models.mdsr import MDSR, MDSRConfig

# family name -> network class (each with its config_class)
FAMILIES: dict[str, type[SRNet]] = {"edsr": EDSR, "mdsr": MDSR}

# name -> family and architecture settings (scales and colours are chosen when the model is built)
PRESETS: dict[str, dict] = {
    "edsr": dict(
        arch="edsr", n_feats=256, n_resblocks=32, res_scale=0.1
    ),  # the paper's large model, 40.7M params at x2
    "edsr-baseline": dict(arch="edsr", n_feats=64, n_resblocks=16, res_scale=1.0),  # the paper's baseline, 1.37M at x2
    "edsr-medium": dict(arch="edsr", n_feats=48, n_resblocks=12, res_scale=1.0),  # the first bundled models, ~0.6M
    "edsr-small": dict(arch="edsr", n_feats=32, n_resblocks=8, res_scale=1.0),  # CPU-friendly, ~0.2M params
    "edsr-tiny": dict(arch="edsr", n_feats=16, n_resblocks=4, res_scale=1.0),  # for tests and quick experiments
    "mdsr": dict(arch="mdsr", n_feats=64, n_resblocks=80, pre_process=True),  # the paper's MDSR, 7.95M params
    "mdsr-baseline": dict(arch="mdsr", n_feats=64, n_resblocks=16, pre_process=True),  # the paper's, 3.23M params
    "mdsr-medium": dict(arch="mdsr", n_feats=48, n_resblocks=12, pre_process=False),  # the bundled default
    "mdsr-tiny": dict(arch="mdsr", n_feats=16, n_resblocks=4, pre_process=False),  # for tests
}


@dataclass(frozen=True)
class Pretrained:
    """A weights file bundled in superres/weights, as listed in weights/manifest.json."""

    name: str
    file: str
    scales: tuple[int, ...]
    arch: str  # the preset it was trained as
    description: str
    default: bool = False  # the model `load_model()` returns (for the scales it has)
    photo: str | None = None  # its photo counterpart (same architecture, trained on degraded inputs): --denoise
    # measured Y-PSNR (dB) by scale and set, e.g. {2: {"Set5": 37.63, "Set14": 33.11, "B100": 31.98}}: written
    # by benchmarks/model_cards.py from docs/results/eval.json; None where not measured
    psnr_y: dict[int, dict[str, float]] | None = None

    def path(self) -> Path:
        return Path(str(resources.files("superres.weights").joinpath(self.file)))


def _read_manifest() -> dict[str, Pretrained]:
    """Bundled models from weights/manifest.json (absent: none)."""
    manifest = resources.files("superres.weights").joinpath("manifest.json")
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text())["models"]
    return {
        e["name"]: Pretrained(
            **{
                **e,
                "scales": tuple(e["scales"]),
                "psnr_y": {int(s): dict(v) for s, v in e["psnr_y"].items()} if e.get("psnr_y") else None,
            }
        )
        for e in entries
    }


def bundled_results() -> list[dict]:
    """The bundled models' Y-PSNR from their manifest entries (`psnr_y`) as `superres eval --json` rows (method =
    the model's name, channel 'y'). The full results are in docs/results/eval.json of the source tree."""
    return [
        {"method": e.name, "dataset": d, "scale": s, "channel": "y", "psnr": v}
        for e in PRETRAINED.values()
        for s, sets in (e.psnr_y or {}).items()
        for d, v in sets.items()
    ]


PRETRAINED: dict[str, Pretrained] = _read_manifest()


def list_models(pretrained: bool = False) -> list[str]:
    """Preset names, or with pretrained=True the names of bundled weights."""
    return sorted(PRETRAINED) if pretrained else sorted(PRESETS)


def default_scales() -> tuple[int, ...]:
    """The scales the bundled default models produce, ascending (empty without bundled models)."""
    return tuple(sorted({s for entry in PRETRAINED.values() if entry.default for s in entry.scales}))


def default_model_name(scale: int | None = None) -> str | None:
    """The bundled model used when none is named (the default one that has `scale`, if given), or None."""
    for entry in PRETRAINED.values():
        if entry.default and (scale is None or scale in entry.scales):
            return entry.name
    return None


def photo_partner(name: str | None) -> str | None:
    """The bundled photo model paired with a bundled model (None: the default), or None if it has none."""
    name = default_model_name() if name is None else str(name)
    entry = PRETRAINED.get(name) if name is not None else None
    return entry.photo if entry is not None and entry.photo in PRETRAINED else None


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(choices)}"


def preset_arch(name: str) -> str:
    """The family ('edsr', 'mdsr') of a preset."""
    if name not in PRESETS:
        raise UnknownModelError(f"unknown model '{name}'{suggest(name, list(PRESETS) + list(PRETRAINED))}")
    return PRESETS[name]["arch"]


def preset_config(
    name: str, scale: int | Sequence[int] | None = None, n_colors: int = 3, **overrides
) -> EDSRConfig | MDSRConfig:
    """The config of a preset for `scale` (EDSR: one scale, default 2; MDSR: one or several, default 2, 3, 4)."""
    arch = preset_arch(name)
    settings = {k: v for k, v in PRESETS[name].items() if k != "arch"}
    scales = (scale,) if isinstance(scale, int) else tuple(scale) if scale is not None else None
    if arch == "edsr":
        if scales is not None and len(scales) != 1:
            raise ConfigError(
                f"'{name}' is a single-scale EDSR; use an MDSR preset (e.g. 'mdsr-medium') for "
                f"x{', x'.join(map(str, scales))} in one network"
            )
        return replace(EDSRConfig(scale=scales[0] if scales else 2, n_colors=n_colors, **settings), **overrides)
    return replace(MDSRConfig(scales=scales or (2, 3, 4), n_colors=n_colors, **settings), **overrides)


def create_model(name: str, scale: int | Sequence[int] | None = None, n_colors: int = 3, **overrides) -> SRNet:
    """An untrained model of a named architecture, e.g. create_model('edsr-baseline', scale=3) or
    create_model('mdsr-baseline') (x2, x3 and x4 in one network)."""
    return FAMILIES[preset_arch(name)](preset_config(name, scale=scale, n_colors=n_colors, **overrides))
