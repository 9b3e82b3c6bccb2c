"""The ImageFolder layout: one folder per class, image files anywhere below it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.errors import InvalidRequest
from shared.imaging import IMAGE_EXTENSIONS

EXPECTED_LAYOUT = "expected <dataset>/<class name>/<image files, possibly in subfolders>"


class BadLayout(InvalidRequest):
    """The folder does not have the expected layout."""


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _listing(folder: str) -> tuple[list[str], list[str]]:
    """The visible (files, subfolders) of a folder, each sorted; symlinked folders count as
    neither (they are not followed, as os.walk does not), and an unreadable folder is empty."""
    files, folders = [], []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not _visible(entry.name):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir:
                    files.append(entry.name)
                elif not entry.is_symlink():
                    folders.append(entry.name)
    except OSError:
        return [], []
    files.sort()
    folders.sort()
    return files, folders


WalkKey = tuple[Any, ...]


def walk_key(relpath: str) -> WalkKey:
    """A file's place in the walk's order, comparable with any other's: the walk yields
    a folder's entries by name at the top, and below it a folder's files (0) before its
    subfolders (1), each by name. Shards of a scan are ranges of these keys."""
    first, *rest = relpath.split(os.sep)
    if not rest:
        return (first,)
    *folders, name = rest
    return (first, *((1, folder) for folder in folders), (0, name))


def _walk(root: str, rel_dir: str, key: WalkKey, start: WalkKey | None) -> Iterator[str]:
    """Relative paths of the files below rel_dir (whose walk key is `key`), from `start`
    on: a folder's files, then its subfolders'. Subfolders wholly before `start` are not
    listed, so a range of a big walk starts where it starts, not at the walk's beginning."""
    files, folders = _listing(os.path.join(root, rel_dir))
    prefix = rel_dir + os.sep
    for name in files:
        if start is None or (*key, (0, name)) >= start:
            yield prefix + name
    for name in folders:
        sub = (*key, (1, name))
        head = start[: len(sub)] if start is not None else None
        if head is not None and sub < head:
            continue
        yield from _walk(root, prefix + name, sub, start if sub == head else None)


def iter_files(
    root: Path, start: str | None = None, stop: str | None = None
) -> Iterator[tuple[str, str | None]]:
    """Yield (relative path, class name) for every visible file, in a stable order (see
    walk_key); with start and stop, only the files from start (included) to stop (excluded),
    whether or not files by those names exist.

    Files directly under the root have no class (None). Folders are streamed one at a time
    (only one listing per level is held), so a huge dataset is never listed in memory at once;
    symlinked folders are not followed.
    """
    lo = walk_key(start) if start is not None else None
    hi = walk_key(stop) if stop is not None else None
    for rel, class_name in _iter_from(str(root), lo):
        if hi is not None and walk_key(rel) >= hi:
            return
        yield rel, class_name


def _iter_from(top: str, start: WalkKey | None) -> Iterator[tuple[str, str | None]]:
    with os.scandir(top) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        if not _visible(entry.name):
            continue
        key = (entry.name,)
        if start is not None and key < start[:1]:
            continue
        if entry.is_file():
            yield entry.name, None
        elif entry.is_dir(follow_symlinks=False):
            below = start if start is not None and key == start[:1] else None
            for rel in _walk(top, entry.name, key, below):
                yield rel, entry.name


def _has_image(folder: str) -> bool:
    """Whether an image file lies anywhere below the folder: listings are read lazily and the
    search stops at the first image, so a submission never lists a whole dataset."""
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if not _visible(entry.name):
                        continue
                    if entry.is_dir():
                        if not entry.is_symlink():  # not followed, as the scan does not
                            pending.append(entry.path)
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                        return True
        except OSError:
            continue
    return False


def check_layout(root: Path) -> list[str]:
    """Return the class names, or raise BadLayout saying what layout is expected."""
    try:
        with os.scandir(root) as entries:
            classes = sorted(
                e.name for e in entries if _visible(e.name) and e.is_dir(follow_symlinks=False)
            )
    except OSError as exc:
        raise BadLayout(f"cannot list '{root.name}': {exc.strerror or exc}") from None
    if not classes:
        raise BadLayout(f"no class subfolders in '{root.name}': {EXPECTED_LAYOUT}")
    if any(_has_image(os.path.join(root, name)) for name in classes):
        return classes
    raise BadLayout(f"no image files in the class folders of '{root.name}': {EXPECTED_LAYOUT}")
