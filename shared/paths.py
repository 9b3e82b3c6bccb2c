"""Resolving user-given paths and keeping them inside the allowed data roots."""

from __future__ import annotations

from pathlib import Path

from shared.errors import Forbidden, InvalidRequest, NotFound


class PathOutsideRoots(Forbidden):
    """The path lies outside the allowed data roots."""


class PathNotFound(NotFound):
    """The path does not exist."""


class NotAFolder(InvalidRequest):
    """The path is a file, not a folder."""


def is_inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_inside_roots(raw: str, roots: list[Path]) -> Path:
    """Resolve symlinks and '..' and refuse anything that lands outside every root.

    A relative path is looked up under each root in turn, then under the working directory.
    Containment is checked before existence so that nothing outside the roots can be probed.
    """
    given = Path(raw).expanduser()
    if given.is_absolute():
        candidates = [given.resolve()]
    else:
        candidates = [(root / given).resolve() for root in roots] + [given.resolve()]
    inside = [c for c in candidates if is_inside(c, roots)]
    if not inside:
        raise PathOutsideRoots(f"path '{raw}' is outside the allowed data roots (DATA_ROOTS)")
    for candidate in inside:
        if candidate.exists():
            return candidate
    raise PathNotFound(f"path '{raw}' does not exist")


def resolve_folder_inside_roots(raw: str, roots: list[Path]) -> Path:
    path = resolve_inside_roots(raw, roots)
    if not path.is_dir():
        raise NotAFolder(f"path '{raw}' is a file; expected a folder with one subfolder per class")
    return path


class NotAFile(InvalidRequest):
    """The path is a folder, not a file."""


def resolve_file_inside_roots(raw: str, roots: list[Path]) -> Path:
    path = resolve_inside_roots(raw, roots)
    if not path.is_file():
        raise NotAFile(f"path '{raw}' is a folder; expected a CSV or JSONL file of captions")
    return path
