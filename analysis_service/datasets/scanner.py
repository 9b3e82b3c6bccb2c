"""Examining one file: stat, content hash and full image validation."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from shared.imaging import ImageLimits, InvalidImage, inspect_image
from shared.paths import is_inside


@dataclass
class ScannedFile:
    relpath: str
    class_name: str | None
    size_bytes: int
    mtime_ns: int
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    invalid_reason: str | None = None


def stat_file(root: Path, relpath: str, class_name: str | None) -> ScannedFile:
    try:
        st = os.stat(root / relpath)
    except OSError as exc:  # e.g. a dangling symlink
        return ScannedFile(relpath, class_name, 0, 0, invalid_reason=f"cannot stat: {exc.strerror}")
    return ScannedFile(relpath, class_name, st.st_size, st.st_mtime_ns)


def examine(
    root: Path, scanned: ScannedFile, limits: ImageLimits, roots: list[Path]
) -> ScannedFile:
    """Hash and validate a file in place; any problem becomes its invalid_reason."""
    if scanned.class_name is None:
        scanned.invalid_reason = "file outside the class folders"
        return scanned
    if not is_inside((root / scanned.relpath).resolve(), roots):
        scanned.invalid_reason = "symlink to a file outside the allowed data roots"
        return scanned
    if scanned.size_bytes > limits.max_bytes:
        scanned.invalid_reason = (
            f"file too large: {scanned.size_bytes} bytes > limit {limits.max_bytes}"
        )
        return scanned
    try:
        data = (root / scanned.relpath).read_bytes()
    except OSError as exc:
        scanned.invalid_reason = f"unreadable file: {exc.strerror or exc}"
        return scanned
    scanned.content_hash = hashlib.sha256(data).hexdigest()
    try:
        info = inspect_image(data, limits)
    except InvalidImage as exc:
        scanned.invalid_reason = str(exc)
        return scanned
    scanned.width, scanned.height, scanned.format = info.width, info.height, info.format
    return scanned
