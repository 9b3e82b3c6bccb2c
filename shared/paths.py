"""Resolving user-given paths and keeping them inside the allowed data roots."""

from __future__ import annotations

import stat
from pathlib import Path

from shared.errors import Forbidden, InvalidRequest, NotFound
from shared.files import is_inside


class PathOutsideRoots(Forbidden):
    """The path lies outside the allowed data roots."""


class PathNotFound(NotFound):
    """The path does not exist."""


class NotAFolder(InvalidRequest):
    """The path is a file, not a folder."""


class InvalidPath(PathNotFound):
    """The path cannot name a file on this system (a NUL, an overlong name, an unknown '~user',
    a symlink loop), so nothing is there: 404, saying why. Not 422: the request is well formed
    (its schema allows any string), it names a file that does not and cannot exist."""


# The longest file name most file systems take (ext4, xfs, btrfs: 255 bytes), and the longest
# path Linux takes (PATH_MAX): the caps of names and paths given in requests.
NAME_MAX = 255
PATH_MAX = 4096


def _checked(raw: str) -> Path:
    """The path as given ('~' expanded), or InvalidPath saying why it cannot be one."""
    if "\0" in raw:
        raise InvalidPath("path contains a NUL character")
    try:
        parts = [part.encode() for part in Path(raw).parts]
    except UnicodeEncodeError:
        raise InvalidPath("path is not valid Unicode (it holds a lone surrogate)") from None
    if any(len(part) > NAME_MAX for part in parts):
        raise InvalidPath(f"a name in the path is longer than {NAME_MAX} bytes")
    try:
        return Path(raw).expanduser()
    except RuntimeError:  # '~user' of a user this machine does not have
        raise InvalidPath(f"path '{raw}' starts with an unknown home folder") from None


def _resolved(path: Path, raw: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a component that is a file
        raise InvalidPath(f"path '{raw}' cannot be resolved: {exc.__class__.__name__}") from None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for this file system, and the like
        return False


def resolve_inside_roots(raw: str, roots: list[Path]) -> Path:
    """Resolve symlinks and '..' and refuse anything that lands outside every root.

    A relative path is looked up under each root in turn, then under the working directory.
    Containment is checked before existence so that nothing outside the roots can be probed.
    A path that cannot name a file (NUL, overlong names, an unknown '~user') is a 422.
    """
    given = _checked(raw)
    if given.is_absolute():
        candidates = [_resolved(given, raw)]
    else:
        candidates = [_resolved(root / given, raw) for root in roots] + [_resolved(given, raw)]
    inside = [c for c in candidates if is_inside(c, roots)]
    if not inside:
        raise PathOutsideRoots(f"path '{raw}' is outside the allowed data roots (DATA_ROOTS)")
    for candidate in inside:
        if _exists(candidate):
            return candidate
    raise PathNotFound(f"path '{raw}' does not exist")


def _kind(path: Path) -> str:
    """What a path that exists is, in words (the stat is not followed by any open)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc.__class__.__name__})"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "a FIFO, socket or device"


def resolve_folder_inside_roots(raw: str, roots: list[Path]) -> Path:
    path = resolve_inside_roots(raw, roots)
    if not path.is_dir():
        raise NotAFolder(
            f"path '{raw}' is {_kind(path)}; expected a folder with one subfolder per class"
        )
    return path


class NotAFile(InvalidRequest):
    """The path is a folder, not a file."""


def resolve_file_inside_roots(raw: str, roots: list[Path], what: str) -> Path:
    """`what`: the file expected, for the message (e.g. "a CSV or JSONL file of captions")."""
    path = resolve_inside_roots(raw, roots)
    if not path.is_file():
        raise NotAFile(f"path '{raw}' is {_kind(path)}; expected {what}")
    return path
