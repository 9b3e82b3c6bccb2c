"""Reading a file named by a user: only a regular file, only inside the data roots, never
blocking, never more than a limit.

The name is checked, then what was opened is checked again (its type by fstat, its real path
by the descriptor), so a file swapped for a symlink, a FIFO or a device between the check and
the read is refused instead of followed or waited on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

# Never follow a symlink in the last component (the path is resolved first, so a symlink there
# means the file was swapped since), never block opening a FIFO, never leak into children.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_FD_PATHS = Path("/proc/self/fd")
OUTSIDE_ROOTS = "the file is outside the allowed data roots (DATA_ROOTS)"


def is_inside(path: Path, roots: list[Path]) -> bool:
    """Whether a path (resolved) is one of the roots or lies below one. Here, not beside the
    path checks of requests (shared.paths), so that the processes that read files import
    nothing of the web framework."""
    return any(path == root or path.is_relative_to(root) for root in roots)


class UnreadableFile(ValueError):
    """Why a user's file cannot be read; the message is shown as the file's reason."""


class MissingFile(UnreadableFile):
    """The file (or a folder on its path) does not exist: never was, or is gone."""


def _unreadable(exc: Exception) -> type[UnreadableFile]:
    return MissingFile if isinstance(exc, FileNotFoundError) else UnreadableFile


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, RuntimeError):  # what Path.resolve raises on a symlink loop
        return "too many levels of symbolic links"
    return str(exc)


def special_file_reason(mode: int) -> str | None:
    """Why a file of this stat mode is not read at all (FIFOs, sockets, devices, folders)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    return "not a regular file (a FIFO, socket or device)"


def _opened_inside(fd: int, real: Path, roots: list[Path]) -> bool:
    """Whether what the descriptor opened lies inside the roots: its real path as the kernel
    knows it (Linux); elsewhere, whether it is the very file (device and inode) that the name,
    resolved again, means inside the roots."""
    try:
        return is_inside(Path(os.readlink(f"{_FD_PATHS}/{fd}")), roots)
    except OSError:
        pass
    try:
        again = Path(os.path.realpath(real, strict=True))
        named, opened = os.stat(again, follow_symlinks=False), os.fstat(fd)
    except (OSError, ValueError):
        return False
    same = (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
    return same and is_inside(again, roots)


_O_PATH = getattr(os, "O_PATH", 0)  # Linux


def _resolved(path: Path) -> tuple[Path, int]:
    """The real path of a name (every symlink followed) and the mode of what it names. On
    Linux the kernel resolves it: an O_PATH descriptor neither opens the file (no FIFO wait,
    no device driver) nor reads it, and its /proc link is its real path, at the cost of a few
    system calls instead of an lstat and some Python per component. Elsewhere, by name."""
    if _O_PATH:
        fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        try:
            return Path(os.readlink(f"{_FD_PATHS}/{fd}")), os.fstat(fd).st_mode
        except OSError:
            pass  # no /proc mounted: resolve by name
        finally:
            os.close(fd)
    real = path.resolve(strict=True)
    return real, os.stat(real).st_mode


def open_inside_roots(path: Path, roots: list[Path]) -> BinaryIO:
    """An open regular file inside the roots, for reading; UnreadableFile if not.

    Symlinks in the name are resolved first; the resolved name is then opened without
    following a final symlink and without blocking, and what was opened is checked (a regular
    file, its real path inside the roots), not the name. The caller closes it."""
    try:
        real, mode = _resolved(path)
        reason = special_file_reason(mode)
    except (OSError, RuntimeError, ValueError) as exc:
        raise _unreadable(exc)(f"cannot read the file: {_why(exc)}") from None
    if not is_inside(real, roots):
        raise UnreadableFile(OUTSIDE_ROOTS)
    if reason is not None:
        raise UnreadableFile(reason)
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:
        raise _unreadable(exc)(f"cannot open the file: {_why(exc)}") from None
    opened = os.fdopen(fd, "rb")
    try:
        if (reason := special_file_reason(os.fstat(fd).st_mode)) is not None:
            raise UnreadableFile(reason)
        if not _opened_inside(fd, real, roots):
            raise UnreadableFile(OUTSIDE_ROOTS)
    except BaseException:
        opened.close()
        raise
    return opened


def read_inside_roots(path: Path, roots: list[Path], max_bytes: int) -> bytes:
    """The bytes of a regular file inside the roots, at most max_bytes; UnreadableFile if not
    (see open_inside_roots)."""
    with open_inside_roots(path, roots) as opened:
        size = os.fstat(opened.fileno()).st_size
        if size > max_bytes:
            raise UnreadableFile(f"file too large: {size} bytes > limit {max_bytes}")
        # Asking for the stated size (and a byte more, to notice growth) rather than for the
        # limit: a read of n bytes allocates n first, and 50 MiB per small image costs more
        # than reading it. A file that grew since fstat is read on, up to the limit.
        data = opened.read(size + 1)
        if len(data) > size:
            data += opened.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise UnreadableFile(f"file too large: more than the limit of {max_bytes} bytes")
    return data
