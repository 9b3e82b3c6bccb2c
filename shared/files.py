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

from shared.paths import is_inside

# Never follow a symlink in the last component (the path is resolved first, so a symlink there
# means the file was swapped since), never block opening a FIFO, never leak into children.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_FD_PATHS = Path("/proc/self/fd")


class UnreadableFile(ValueError):
    """Why a user's file cannot be read; the message is shown as the file's reason."""


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


def _opened_path(fd: int, fallback: Path) -> Path:
    """The real path of what the descriptor opened (Linux); the resolved name elsewhere."""
    try:
        return Path(os.readlink(_FD_PATHS / str(fd)))
    except OSError:
        return fallback


def read_inside_roots(path: Path, roots: list[Path], max_bytes: int) -> bytes:
    """The bytes of a regular file inside the roots, at most max_bytes; UnreadableFile if not."""
    try:
        real = path.resolve(strict=True)
        reason = special_file_reason(os.stat(real).st_mode)
    except (OSError, RuntimeError, ValueError) as exc:
        raise UnreadableFile(f"cannot read the file: {_why(exc)}") from None
    if not is_inside(real, roots):
        raise UnreadableFile("the file is outside the allowed data roots (DATA_ROOTS)")
    if reason is not None:
        raise UnreadableFile(reason)
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:
        raise UnreadableFile(f"cannot open the file: {_why(exc)}") from None
    with os.fdopen(fd, "rb") as opened:
        found = os.fstat(fd)
        if (reason := special_file_reason(found.st_mode)) is not None:
            raise UnreadableFile(reason)
        if not is_inside(_opened_path(fd, real), roots):
            raise UnreadableFile("the file is outside the allowed data roots (DATA_ROOTS)")
        if found.st_size > max_bytes:
            raise UnreadableFile(f"file too large: {found.st_size} bytes > limit {max_bytes}")
        data = opened.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFile(f"file too large: more than the limit of {max_bytes} bytes")
    return data
