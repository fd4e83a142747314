"""Exceptions raised by superres: one hierarchy, each message saying what was seen and how to fix it.

Messages speak of the library's parameters. Where changing one option is the fix, the error carries a
`Hint`: `str(error)` words it with the parameter ("pass overwrite=True to replace it") and the command line
words it with its flag (`one_line(error, flags)`, "use --overwrite to replace it").
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """Advice on one option. `advice` has '{}' where the option goes; `api` is how a Python caller sets it
    (default: the option's name)."""

    option: str  # the parameter's name: 'overwrite', 'tile', 'resume'
    advice: str  # 'pass {} to replace it'
    api: str = ""  # 'overwrite=True'

    def words(self, flags: Mapping[str, str] | None = None) -> str:
        """The advice with the flag for the option (from `flags`), else the parameter."""
        spelled = flags.get(self.option) if flags else None
        return self.advice.format(spelled or self.api or self.option)


class SuperresError(Exception):
    """Base class for every error the library raises on purpose."""

    def __init__(self, message: str = "", *, hint: Hint | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint.words()})"


class Cancelled(SuperresError):
    """Work stopped because its caller cancelled it (the `cancel` event of Upscaler.strips and the callers above it)."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class UnknownModelError(SuperresError, KeyError):
    """A model name that is neither a preset, a bundled model, nor an existing file."""


class CheckpointError(SuperresError):
    """A weights file that cannot be read, or whose tensors do not fit any known architecture."""


class ImageError(SuperresError):
    """An image (or video) that cannot be read or written."""


class VideoError(ImageError):
    """A video that cannot be read, decoded or written."""


class ConfigError(SuperresError, ValueError):
    """A setting outside its allowed range, or settings that do not go together."""


class BackendError(ConfigError):
    """A backend asked for something it cannot honour (a device, a precision, a model kind)."""


def did_you_mean(name: str, choices: list[str]) -> str:
    """'; did you mean 'x'?' for the closest choice, or '; known: a, b' when none is close."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(choices) or 'none'}"


def one_line(
    error: BaseException, path: str | os.PathLike | None = None, flags: Mapping[str, str] | None = None
) -> str:
    """The message for a user: one line, starting with the file it concerns (unless it already names it), the
    hint worded with `flags` (option -> flag) where given. Any exception works; a foreign one is named by type
    when it has no message."""
    if isinstance(error, SuperresError):
        text = error.message if error.hint is None else f"{error.message} ({error.hint.words(flags)})"
    else:
        text = str(error).strip() or type(error).__name__
    text = " ".join(text.split()) if "\n" in text else text
    if path is not None and not text.startswith(str(path)):
        text = f"{path}: {text}"
    return text
