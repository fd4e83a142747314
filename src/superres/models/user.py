"""The user's own models, registered under names: `superres models add FILE --name NAME`.

A registered file is copied into the user's data folder (`$XDG_DATA_HOME/superres/models`, by default
`~/.local/share/superres/models`), so the name keeps working after the original moves, and the name works
wherever a bundled name does: `--model NAME`, `superres.load_model("NAME")`, the web page. Bundled models and
presets keep their names: a user's model cannot take one. The folder holds the files and `models.json`
(name -> file name), changed under a lock. Nothing here runs code from a file: a file is checked by loading
it (safetensors, or torch.load with weights_only=True) before it is registered.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from superres.errors import CheckpointError, ConfigError, Hint
from superres.imaging.files import atomic_path

log = logging.getLogger(__name__)

INDEX = "models.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def data_folder() -> Path:
    """Where registered models live: $XDG_DATA_HOME/superres/models (default ~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "superres" / "models"


def _read_index() -> dict[str, str]:
    """models.json as name -> file name; an unreadable index counts as empty (with a warning), so that the
    commands that would rewrite it still run."""
    index = data_folder() / INDEX
    if not index.is_file():
        return {}
    try:
        entries = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s cannot be read (%s); your registered models are ignored until it is rewritten", index, e)
        return {}
    if not isinstance(entries, dict):
        log.warning("%s is not a name -> file map; your registered models are ignored until it is rewritten", index)
        return {}
    return {str(k): str(v) for k, v in entries.items() if isinstance(v, str)}


def user_models() -> dict[str, Path]:
    """Registered names and their files (only those whose file is still there), bundled and preset names
    excepted (those names are the package's)."""
    folder, reserved = data_folder(), _reserved()
    entries = _read_index()
    return {n: folder / f for n, f in entries.items() if n not in reserved and (folder / f).is_file()}


def _reserved() -> set[str]:
    from superres.models.registry import PRETRAINED, presets  # noqa: PLC0415

    return set(PRETRAINED) | set(presets())


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """The index's lock (one writer at a time, across processes)."""
    folder = data_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_index(entries: dict[str, str]) -> None:
    with atomic_path(data_folder() / INDEX) as tmp:
        Path(tmp).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


def add_user_model(path: str | os.PathLike, name: str | None = None, replace: bool = False) -> str:
    """Copy a weights file into the data folder under `name` (default: the file's stem) and return the name.

    The file must load (its family detected). A bundled model's or a preset's name is refused; so is a name
    already registered, unless `replace`."""
    from superres.models.checkpoints import load_model  # noqa: PLC0415 - checkpoints imports this module

    source = Path(path)
    name = name or source.stem
    if not NAME.fullmatch(name):
        raise ConfigError(f"'{name}' is not a usable model name: letters, digits, '.', '_', '+' and '-', at most 64")
    if name in _reserved():
        raise ConfigError(f"'{name}' is the name of a bundled model or preset; choose another")
    if source.suffix not in (".safetensors", ".pt", ".pth"):
        raise CheckpointError(f"{source}: give a .safetensors, .pt or .pth weights file")
    load_model(source)  # a file that is no known family is refused here, in one line
    with _locked():
        entries = _read_index()
        if name in entries and not replace:
            raise ConfigError(
                f"you have a model named '{name}' already", hint=Hint("replace", "use {} to replace it", "replace=True")
            )
        folder = data_folder()
        target = folder / f"{name}{source.suffix}"
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        old = entries.get(name)
        entries[name] = target.name
        _write_index(entries)
        if old is not None and old != target.name:
            (folder / old).unlink(missing_ok=True)
    return name


def remove_user_model(name: str) -> None:
    """Forget a registered name and delete its copy."""
    with _locked():
        entries = _read_index()
        if name not in entries:
            raise ConfigError(f"no model of yours is named '{name}' (yours: {', '.join(entries) or 'none'})")
        file = entries.pop(name)
        _write_index(entries)
        (data_folder() / file).unlink(missing_ok=True)
