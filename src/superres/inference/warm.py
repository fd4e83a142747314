"""Warm models: what `superres.upscale` and `ImageUpscaler` load is kept, so the next call reads nothing again.

A small, thread-safe, least-recently-used cache of loaded model handles, keyed by what was asked for: a bundled
name, a preset, a registered name, or a file (by its resolved path, size and modification time, so a file
that changes is read again), and the scale that chose the default. `superres.load_model` itself always
loads afresh: its caller owns what it gets. What the cache hands out is shared between upscalers, which never
change a network's weights (they copy a network to move it to another device, and blend from copies).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

from superres.models.checkpoints import load_model
from superres.models.handle import ModelHandle
from superres.models.registry import PRETRAINED
from superres.models.user import user_models

DEFAULT_SIZE = 4  # handles kept: the default, its photo model, and a couple of the user's own

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A thread-safe least-recently-used cache of at most `size` values, each made once by `get`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for key, made by make() if absent (one at a time: two threads asking for one key make
        it once); the least recently used values beyond `size` are dropped."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            value = make()
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)
            return value

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class WarmModels(Lru[tuple, ModelHandle]):
    """Loaded handles, at most `size`, the least recently used dropped first."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        super().__init__(size)

    def load(self, name_or_path: str | os.PathLike | None = None, scale: int | None = None) -> ModelHandle:
        """`load_model(name_or_path, scale)`, read once while it stays in the cache."""
        return self.get((_identity(name_or_path), scale), lambda: load_model(name_or_path, scale))


def _identity(name_or_path: str | os.PathLike | None) -> tuple:
    """What makes two requests the same model: a file's resolved path, size and modification time; else the
    name as given."""
    if name_or_path is None or str(name_or_path) in PRETRAINED:  # the package's files never change under it
        return ("name", str(name_or_path))
    path = Path(name_or_path)
    if not path.is_file():  # a registered name: its file, which `models add --replace` may change
        path = user_models().get(str(name_or_path), path)
    if path.is_file():
        stat = path.stat()
        return ("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return ("name", str(name_or_path))


WARM = WarmModels()  # the process's warm models (the API's and serve's); clear with WARM.clear()
