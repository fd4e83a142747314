"""The user's own models, registered under names: `superres models add FILE --name NAME`.

A registered file is copied into the user's data folder (`$XDG_DATA_HOME/superres/models`, by default
`~/.local/share/superres/models`), so the name keeps working after the original moves, and the name works
wherever a bundled name does: `--model NAME`, `superres.load_model("NAME")`, the web page. The folder holds
the files and `models.json` (name -> file name). Nothing here runs code from a file: a file is checked by
loading it (safetensors, or torch.load with weights_only=True) before it is registered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from superres.errors import CheckpointError, ConfigError
from superres.imaging.files import atomic_path

INDEX = "models.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def data_folder() -> Path:
    """Where registered models live: $XDG_DATA_HOME/superres/models (default ~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "superres" / "models"


def user_models() -> dict[str, Path]:
    """Registered names and their files (only those whose file is still there)."""
    index = data_folder() / INDEX
    if not index.is_file():
        return {}
    try:
        entries = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{index}: the list of your models cannot be read ({e})") from e
    folder = data_folder()
    return {str(name): folder / str(file) for name, file in entries.items() if (folder / str(file)).is_file()}


def _write_index(entries: dict[str, str]) -> None:
    index = data_folder() / INDEX
    with atomic_path(index) as tmp:
        Path(tmp).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


def add_user_model(path: str | os.PathLike, name: str | None = None, taken: set[str] | None = None) -> str:
    """Copy a weights file into the data folder under `name` (default: the file's stem) and return the name.

    The file must load (its family detected). `taken`: names that belong to others (bundled models, presets)."""
    from superres.models.checkpoints import load_model  # noqa: PLC0415 - checkpoints imports the registry

    source = Path(path)
    name = name or source.stem
    if not NAME.fullmatch(name):
        raise ConfigError(f"'{name}' is not a usable model name: letters, digits, '.', '_', '+' and '-', at most 64")
    if taken and name in taken:
        raise ConfigError(f"'{name}' is the name of a bundled model or preset; choose another")
    if source.suffix not in (".safetensors", ".pt", ".pth"):
        raise CheckpointError(f"{source}: give a .safetensors, .pt or .pth weights file")
    load_model(source)  # a file that is no known family is refused here, in one line
    folder = data_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}{source.suffix}"
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    entries = {k: v.name for k, v in user_models().items()}
    old = entries.get(name)
    entries[name] = target.name
    _write_index(entries)
    if old is not None and old != target.name:
        (folder / old).unlink(missing_ok=True)
    return name


def remove_user_model(name: str) -> None:
    """Forget a registered name and delete its copy."""
    models = user_models()
    if name not in models:
        known = ", ".join(models) or "none"
        raise ConfigError(f"no model of yours is named '{name}' (yours: {known})")
    entries = {k: v.name for k, v in models.items() if k != name}
    _write_index(entries)
    models[name].unlink(missing_ok=True)
