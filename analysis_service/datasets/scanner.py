"""Examining one file: stat, content hash and full image validation."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from shared.concurrency import split_evenly
from shared.files import UnreadableFile, read_inside_roots, special_file_reason
from shared.imaging import ImageLimits, InvalidImage, inspect_image


@dataclass(slots=True)
class ScannedFile:
    relpath: str
    class_name: str | None
    size_bytes: int
    mtime_ns: int
    ctime_ns: int | None = None
    inode: int | None = None
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    invalid_reason: str | None = None


def _printable(name: str) -> str:
    """A name whose bytes are not UTF-8, those bytes escaped (a backslash, x and two hex
    digits), so that it can be stored and shown."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _utf8(name: str | None) -> bool:
    if name is None:
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system gave that are not UTF-8
        return False
    return True


def _signed64(inode: int) -> int:
    """An inode number as Postgres' bigint holds it: numbers of 2**63 and above (some file
    systems use all 64 bits) wrap to negative, one to one."""
    return inode - (1 << 64) if inode >= 1 << 63 else inode


def stat_file(
    root: str, relpath: str, class_name: str | None, folder: int | None = None
) -> ScannedFile:
    """Size, mtime, ctime and inode; FIFOs, sockets and devices are invalid here, never
    opened, and so is a file whose name is not UTF-8 (it could not be stored or shown as it
    is). folder: the file's folder opened (see stat_all), else the file is found by its
    path from root."""
    if not (_utf8(relpath) and _utf8(class_name)):
        shown_class = _printable(class_name) if class_name is not None else None
        reason = "file name is not valid UTF-8"
        return ScannedFile(_printable(relpath), shown_class, 0, 0, invalid_reason=reason)
    try:
        if folder is None:
            st = os.stat(os.path.join(root, relpath))
        else:
            st = os.stat(relpath.rpartition(os.sep)[2], dir_fd=folder)
    except (OSError, ValueError) as exc:  # a dangling symlink, a loop, a name too long
        reason = f"cannot stat: {getattr(exc, 'strerror', None) or exc}"
        return ScannedFile(relpath, class_name, 0, 0, invalid_reason=reason)
    return ScannedFile(
        relpath,
        class_name,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        _signed64(st.st_ino),
        invalid_reason=special_file_reason(st.st_mode),
    )


def stat_all(root: str, entries: Iterable[tuple[str, str | None]]) -> list[ScannedFile]:
    """stat_file for each (relpath, class name) of a walk, each file found by its name in its
    folder, opened once for the files the walk lists together: a path from the root costs
    the kernel a lookup of every folder above the file, a third of the stat. A folder that
    cannot be opened (gone since the walk) leaves its files to stat_file's own errors."""
    stats: list[ScannedFile] = []
    folder, opened = None, None
    try:
        for relpath, class_name in entries:
            head = relpath.rpartition(os.sep)[0]
            if head != folder:
                if opened is not None:
                    os.close(opened)
                folder, opened = head, None
                with contextlib.suppress(OSError, ValueError):
                    opened = os.open(os.path.join(root, head), os.O_RDONLY | os.O_DIRECTORY)
            stats.append(stat_file(root, relpath, class_name, opened))
    finally:
        if opened is not None:
            os.close(opened)
    return stats


def examine(
    root: Path, scanned: ScannedFile, limits: ImageLimits, roots: list[Path]
) -> ScannedFile:
    """Hash and validate a file in place; any problem becomes its invalid_reason."""
    if scanned.class_name is None:
        scanned.invalid_reason = "file outside the class folders"
        return scanned
    try:
        data = read_inside_roots(root / scanned.relpath, roots, limits.max_bytes)
    except UnreadableFile as exc:
        scanned.invalid_reason = str(exc)
        return scanned
    scanned.content_hash = hashlib.sha256(data).hexdigest()
    try:
        info = inspect_image(data, limits)
    except InvalidImage as exc:
        scanned.invalid_reason = str(exc)
        return scanned
    scanned.width, scanned.height, scanned.format = info.width, info.height, info.format
    return scanned


# Files a scanning process reads at once: on a cold dataset each read is a wait on the disk,
# and reads in flight side by side go several times faster (on a warm one, four per process
# still beat one: Python's share of each file overlaps another's I/O).
READERS_PER_PROCESS = 4
_readers: ThreadPoolExecutor | None = None


def examine_chunk(
    root: Path, files: list[ScannedFile], limits: ImageLimits, roots: list[Path]
) -> list[ScannedFile]:
    """In a scanning process (pipeline/scan.py): examine each file of a chunk,
    READERS_PER_PROCESS at a time, and send the chunk back examined."""
    global _readers
    if _readers is None:
        _readers = ThreadPoolExecutor(READERS_PER_PROCESS, thread_name_prefix="read")
    examine_part = partial(_examine_all, root, limits=limits, roots=roots)
    for _ in _readers.map(examine_part, split_evenly(files, READERS_PER_PROCESS)):
        pass
    return files


def _examine_all(
    root: Path, files: list[ScannedFile], limits: ImageLimits, roots: list[Path]
) -> None:
    for scanned in files:
        examine(root, scanned, limits, roots)
