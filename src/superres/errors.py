"""Exceptions raised by superres. Each message says what was seen and, where it can, how to fix it."""

from __future__ import annotations


class SuperresError(Exception):
    """Base class for every error the library raises on purpose."""


class UnknownModelError(SuperresError, KeyError):
    """A model name that is neither a preset, a bundled model, nor an existing file."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(SuperresError):
    """A weights file that cannot be read, or whose tensors do not fit the architecture."""


class ImageError(SuperresError):
    """An image that cannot be read or written."""


class ConfigError(SuperresError, ValueError):
    """A setting outside its allowed range."""
