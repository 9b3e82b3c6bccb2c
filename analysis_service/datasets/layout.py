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


def iter_files(root: Path) -> Iterator[tuple[str, str | None]]:
    """Yield (relative path, class name) for every visible file, in a stable order.

    Files directly under the root have no class (None). Directories are streamed, so a huge
    dataset is never listed in memory at once; symlinked folders are not followed.
    """
    with os.scandir(root) as entries:
        top = sorted(entries, key=lambda e: e.name)
    for entry in top:
        if not _visible(entry.name):
            continue
        if entry.is_file():
            yield entry.name, None
        elif entry.is_dir(follow_symlinks=False):
            for dirpath, dirnames, filenames in os.walk(entry.path):
                dirnames[:] = sorted(d for d in dirnames if _visible(d))
                rel_dir = os.path.relpath(dirpath, root)
                for name in sorted(filenames):
                    if _visible(name):
                        yield os.path.join(rel_dir, name), entry.name


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
    for rel, class_name in iter_files(root):
        if class_name is not None and Path(rel).suffix.lower() in IMAGE_EXTENSIONS:
            return classes
    raise BadLayout(f"no image files in the class folders of '{root.name}': {EXPECTED_LAYOUT}")
