"""The ImageFolder layout: one folder per class, image files anywhere below it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


def _walk(root: str, rel_dir: str) -> Iterator[str]:
    """Relative paths of the files below rel_dir: a folder's files, then its subfolders'."""
    files, folders = _listing(os.path.join(root, rel_dir))
    prefix = rel_dir + os.sep
    for name in files:
        yield prefix + name
    for name in folders:
        yield from _walk(root, prefix + name)


def iter_files(root: Path) -> Iterator[tuple[str, str | None]]:
    """Yield (relative path, class name) for every visible file, in a stable order.

    Files directly under the root have no class (None). Folders are streamed one at a time
    (only one listing per level is held), so a huge dataset is never listed in memory at once;
    symlinked folders are not followed.
    """
    top = str(root)
    with os.scandir(top) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        if not _visible(entry.name):
            continue
        if entry.is_file():
            yield entry.name, None
        elif entry.is_dir(follow_symlinks=False):
            for rel in _walk(top, entry.name):
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
