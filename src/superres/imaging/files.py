"""Atomic file writing: a write either completes or leaves the old file (or none), never half a file."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path beside `path`; once the block succeeds, sync it and rename it into place
    with ordinary file permissions. On any error the temporary file is removed and `path` is untouched.

    With overwrite=False, a file that appeared at `path` while the block ran is kept and TargetExistsError
    raised: the file is put in place by a hard link, which fails rather than replace (where the file
    system has no hard links, by a last check before the rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class TargetExistsError(FileExistsError):
    """The file to be written appeared while it was being made, and overwriting was not allowed."""


def _place_new(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise TargetExistsError(str(path)) from None
    except OSError:  # no hard links here (some network and FAT file systems)
        if path.exists():
            raise TargetExistsError(str(path)) from None
        os.replace(tmp, path)


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
