"""Named architectures (presets) and the pretrained models that ship inside the package.

`create_model("edsr-baseline", scale=4)` builds an untrained network; `load_model` (in
checkpoints.py) also resolves the names of bundled weights listed in PRETRAINED.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from superres.errors import UnknownModelError, did_you_mean
from superres.models.base import SRNet
from superres.models.family import Family, families


def presets() -> dict[str, tuple[Family, dict]]:
    """Named architectures of every registered family: name -> (family, config fields)."""
    return {name: (family, settings) for family in families().values() for name, settings in family.presets.items()}


@dataclass(frozen=True)
class Pretrained:
    """A weights file bundled in superres/weights, as listed in weights/manifest.json."""

    name: str
    file: str
    scales: tuple[int, ...]
    arch: str  # the preset it was trained as
    description: str
    default: bool = False  # the model `load_model()` returns (for the scales it has)
    photo: str | None = None  # its photo counterpart (trained on degraded inputs): --denoise
    # measured Y-PSNR (dB) by scale and set, e.g. {2: {"Set5": 37.63, "Set14": 33.11, "B100": 31.98}}: written
    # by benchmarks/model_cards.py from docs/results/eval.json; None where not measured
    psnr_y: dict[int, dict[str, float]] | None = None
    # OpenVINO files of the network quantised to int8 by benchmarks/int8.py, by scale, and the SHA-256 of the
    # weights they were made from (inference.openvino.weights_digest): `--precision int8` runs them
    int8: dict[int, str] | None = None
    int8_digest: str | None = None

    def path(self, file: str | None = None) -> Path:
        """This model's weights file, or another file of the bundled weights folder."""
        return Path(str(resources.files("superres.weights").joinpath(file or self.file)))


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
                "int8": {int(s): f for s, f in e["int8"].items()} if e.get("int8") else None,
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
    return sorted(PRETRAINED) if pretrained else sorted(presets())


def default_scales() -> tuple[int, ...]:
    """The scales the bundled default models produce, ascending (empty without bundled models)."""
    return tuple(sorted({s for entry in PRETRAINED.values() if entry.default for s in entry.scales}))


def default_model_name(scale: int | None = None) -> str | None:
    """The bundled model used when none is named (the default one that has `scale`, if given), or None."""
    for entry in PRETRAINED.values():
        if entry.default and (scale is None or scale in entry.scales):
            return entry.name
    return None


def _bundled_entry(name: str | None) -> Pretrained | None:
    """The manifest entry of a bundled model (None: the default), or None."""
    name = default_model_name() if name is None else str(name)
    return PRETRAINED.get(name) if name is not None else None


def photo_partner(name: str | None) -> str | None:
    """The bundled photo model paired with a bundled model (None: the default), or None if it has none."""
    entry = _bundled_entry(name)
    return entry.photo if entry is not None and entry.photo in PRETRAINED else None


def preset_arch(name: str) -> str:
    """The family ('edsr', 'mdsr', ...) of a preset."""
    return _preset(name)[0].name


def _preset(name: str) -> tuple[Family, dict]:
    table = presets()
    if name not in table:
        raise UnknownModelError(f"unknown model '{name}'{did_you_mean(name, list(table) + list(PRETRAINED))}")
    return table[name]


def preset_config(name: str, scale: int | Sequence[int] | None = None, n_colors: int = 3, **overrides):
    """The config of a preset for `scale` (one scale or several, as its family allows; None: the family's
    default, x2 for a single-scale family, x2, x3 and x4 for MDSR), with fields overridden."""
    family, settings = _preset(name)
    scales = (scale,) if isinstance(scale, int) else tuple(scale) if scale is not None else None
    return replace(family.preset_config(settings, scales, n_colors), **overrides)


def create_model(name: str, scale: int | Sequence[int] | None = None, n_colors: int = 3, **overrides) -> SRNet:
    """An untrained network of a named architecture, e.g. create_model('edsr-baseline', scale=3) or
    create_model('mdsr-baseline') (x2, x3 and x4 in one network)."""
    family, _ = _preset(name)
    return family.build(preset_config(name, scale=scale, n_colors=n_colors, **overrides))  # type: ignore[return-value]
