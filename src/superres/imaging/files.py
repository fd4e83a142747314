"""Atomic file writing: a write either completes or leaves the old file (or none), never half a file."""

from __future__ import annotations

import errno
import glob
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path beside `path`; once the block succeeds, sync it and rename it into place
    with ordinary file permissions. On any error the temporary file is removed and `path` is untouched.

    With overwrite=False, a file that appeared at `path` while the block ran is kept and TargetExistsError
    raised: the file is put in place by a hard link, which fails rather than replace (where the file
    system has no hard links, by a last check before the rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    tmp = _new_part_file(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _new_part_file(path: Path) -> str:
    """Create an empty file beside `path`, named .<name>.<random>.part, and return its path.

    It is made with mode 0o666, so the kernel takes the umask off (and a default ACL applies) as for any
    new file: the result has ordinary permissions without the umask being read, which os.umask can do only
    by setting it, process-wide, while other threads may be creating files."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(tempfile.TMP_MAX):  # as many names as tempfile.mkstemp tries
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


@contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a file open for reading and writing that becomes `path` once the block succeeds.

    On Linux the file has no name until then (O_TMPFILE): a crash at any moment, SIGKILL included, leaves
    nothing behind. Where the kernel or file system cannot make unnamed files, this is atomic_path's named
    temporary file. overwrite=False as in atomic_path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not os.path.isdir("/proc/self/fd"):  # the unnamed file is named through /proc (linkat)
            raise AttributeError
        fd = os.open(path.parent, os.O_TMPFILE | os.O_RDWR, 0o666)  # the umask applies
    except (AttributeError, OSError) as e:  # no O_TMPFILE (not Linux, or e.g. some network file systems)
        if isinstance(e, OSError) and e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            raise
        with atomic_path(path, overwrite) as tmp, open(tmp, "w+b") as f:
            yield f
        return
    with os.fdopen(fd, "w+b") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
        _link_unnamed(f.fileno(), path, overwrite)


def _link_unnamed(fd: int, path: Path, overwrite: bool) -> None:
    """Give the unnamed file `fd` the name `path` (replacing a file there only if overwrite)."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:

        def link(name: str) -> None:  # linkat(..., AT_SYMLINK_FOLLOW), which a dir_fd makes os.link use
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder, follow_symlinks=True)

        if not overwrite:
            try:
                link(path.name)
            except FileExistsError:
                raise TargetExistsError(str(path)) from None
            return
        tmp = f".{path.name}.{secrets.token_hex(4)}.part"  # a name only between these two calls
        link(tmp)
        try:
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        finally:
            try:
                os.unlink(tmp, dir_fd=folder)
            except FileNotFoundError:
                pass
    finally:
        os.close(folder)


STALE_SECONDS = 3600  # a partial file of ours this old is left from a crash, not being written


def remove_stale_parts(path: Path) -> list[Path]:
    """Delete the temporary files a killed run left beside `path` (named .<name>.<random>.part by
    atomic_path) that have not changed for an hour. Returns what was deleted."""
    removed = []
    now = time.time()
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_SECONDS:
                part.unlink()
                removed.append(part)
        except OSError:
            pass
    return removed


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
    with atomic_file(path, overwrite) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
