"""Reading captions made elsewhere: CSV or JSONL with image, label and caption.

The SSD-LLM layout loads as is: a CSV whose header is `<subject>,img_name,caption`, the first
column holding the label. Otherwise columns are found by name (image/img_name/path/file/name,
label/class/category, caption/text/description). Problems are reported with row numbers.

A submission only opens the file and reads its head (check_head); the job reads the whole file
(check_file, then read_rows), always through one checked open (open_captions_file).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from shared.errors import InvalidRequest
from shared.files import OUTSIDE_ROOTS, UnreadableFile, open_inside_roots
from shared.paths import PathOutsideRoots

IMAGE_COLUMNS = ("img_name", "image", "image_path", "img_path", "path", "file", "filename", "name")
LABEL_COLUMNS = ("label", "class", "class_name", "category")
CAPTION_COLUMNS = ("caption", "text", "description")
MAX_BYTES = 1024 * 1024 * 1024
MAX_LISTED = 10
#: What a submission reads of the file: the header and first row must lie within it.
HEAD_BYTES = 64 * 1024
JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: The longest line read: captions are hundreds of characters, and a file of one endless line
#: must not be held in memory whole.
MAX_LINE_BYTES = 1024 * 1024


class Digest(Protocol):
    """What the file's bytes are fed to as they are read (a hashlib object)."""

    def update(self, data: bytes, /) -> None: ...


class CaptionsFileError(InvalidRequest):
    """The captions file cannot be used."""


@dataclass(frozen=True)
class CaptionRow:
    row: int  # 1-based data row (the header is row 0)
    image: str
    label: str | None
    caption: str


@dataclass(frozen=True)
class Columns:
    image: str | int
    label: str | int | None
    caption: str | int


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def csv_columns(header: list[str]) -> Columns:
    image, caption, label = (
        _pick(header, IMAGE_COLUMNS),
        _pick(header, CAPTION_COLUMNS),
        _pick(header, LABEL_COLUMNS),
    )
    if image is None or caption is None:
        raise CaptionsFileError(
            f"header {header[:6]} lacks an image column ({'/'.join(IMAGE_COLUMNS[:4])}...) or "
            f"a caption column ({'/'.join(CAPTION_COLUMNS)})"
        )
    if label is None and len(header) >= 3 and image == 1 and caption == 2:
        label = 0  # the SSD-LLM layout: `<subject>,img_name,caption`
    return Columns(image, label, caption)


def _bounded_lines(f: BinaryIO) -> Iterator[bytes]:
    """The file's lines, each read with a cap so that one enormous line is refused, not held."""
    number = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise CaptionsFileError(
                f"line {number} is longer than {MAX_LINE_BYTES // 1024} KiB; "
                "each row must be one image and its caption"
            )
        yield raw


def _text(raw_lines: Iterator[bytes], digest: Digest | None = None) -> Iterator[str]:
    """Lines of a UTF-8 file; bad encoding is reported with its line. Every byte read is fed
    to digest, so that a whole pass hashes exactly what it read."""
    for number, raw in enumerate(raw_lines, 1):
        if digest is not None:
            digest.update(raw)
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise CaptionsFileError(
                f"line {number} is not valid UTF-8; save the file as UTF-8"
            ) from None


def _delimiter(first_line: str) -> str:
    # Tab-separated exports are common; commas are the default.
    return "\t" if "\t" in first_line and "," not in first_line else ","


def _csv_rows(lines: Iterator[str]) -> Iterator[CaptionRow]:
    first = next(lines, "")
    if not first.strip():
        raise CaptionsFileError("the captions file is empty")
    reader = csv.reader(itertools.chain([first], lines), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except StopIteration:
        raise CaptionsFileError("the captions file is empty") from None
    except csv.Error as exc:
        raise CaptionsFileError(f"malformed CSV header: {exc}") from None
    cols = csv_columns(header)
    try:
        for number, fields in enumerate(reader, 1):
            if not any(f.strip() for f in fields):
                continue

            def get(col: str | int | None, fields: list[str] = fields) -> str:
                return fields[col].strip() if isinstance(col, int) and col < len(fields) else ""

            yield CaptionRow(number, get(cols.image), get(cols.label) or None, get(cols.caption))
    except csv.Error as exc:
        raise CaptionsFileError(f"malformed CSV near row {reader.line_num}: {exc}") from None


def _jsonl_row(number: int, line: str) -> CaptionRow:
    try:
        item = json.loads(line)
    except ValueError:
        raise CaptionsFileError(f"row {number} is not valid JSON") from None
    if not isinstance(item, dict):
        raise CaptionsFileError(f"row {number} is not a JSON object")

    def first(names: tuple[str, ...]) -> str:
        for name in names:
            if isinstance(item.get(name), str | int):
                return str(item[name]).strip()
        return ""

    return CaptionRow(
        number, first(IMAGE_COLUMNS), first(LABEL_COLUMNS) or None, first(CAPTION_COLUMNS)
    )


def _jsonl_rows(lines: Iterator[str]) -> Iterator[CaptionRow]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield _jsonl_row(number, line)


def _is_jsonl(name: str) -> bool:
    return Path(name).suffix.lower() in JSONL_SUFFIXES


def read_rows(f: BinaryIO, name: str, digest: Digest | None = None) -> Iterator[CaptionRow]:
    """The rows of an open captions file from where it stands, read lazily; `name` (the
    file's) tells JSONL from CSV; digest gets every byte read."""
    lines = _text(_bounded_lines(f), digest)
    return _jsonl_rows(lines) if _is_jsonl(name) else _csv_rows(lines)


def open_captions_file(path: Path, roots: list[Path]) -> BinaryIO:
    """The captions file opened once, checked (a regular file inside the roots, see
    shared.files) and no larger than MAX_BYTES: 403 outside the roots, 422 otherwise."""
    try:
        f = open_inside_roots(path, roots)
    except UnreadableFile as exc:
        if str(exc) == OUTSIDE_ROOTS:
            raise PathOutsideRoots(f"captions file '{path}': {exc}") from None
        raise CaptionsFileError(f"captions file '{path.name}': {exc}") from None
    if os.fstat(f.fileno()).st_size > MAX_BYTES:
        f.close()
        raise CaptionsFileError(f"captions file larger than {MAX_BYTES} bytes")
    return f


def check_head(f: BinaryIO, name: str) -> None:
    """The cheap check of a submission: the file is not empty, and its first line (within
    HEAD_BYTES) is a header naming an image and a caption column (CSV), or a JSON object
    (JSONL). The rows are checked by the job (check_file)."""
    head = f.read(HEAD_BYTES)
    if not head.strip():
        raise CaptionsFileError("the captions file is empty")
    complete = len(head) < HEAD_BYTES
    lines = head.splitlines(keepends=True)
    if not complete:  # the last line may be cut short: only whole lines are judged
        lines = lines[:-1] if len(lines) > 1 else []
    if not lines:
        raise CaptionsFileError(f"the first line of the captions file is over {HEAD_BYTES} bytes")
    texts = _text(iter(lines))
    if _is_jsonl(name):
        for number, line in enumerate(texts, 1):
            if line.strip():
                row = _jsonl_row(number, line)
                if not (row.image and row.caption):
                    raise CaptionsFileError(
                        f"row {number} lacks an image ({'/'.join(IMAGE_COLUMNS[:4])}...) or a "
                        f"caption ({'/'.join(CAPTION_COLUMNS)})"
                    )
                return
        return  # only blank lines in the head: the job reads on
    first = next(texts)
    try:
        header = next(csv.reader([first], delimiter=_delimiter(first)))
    except (csv.Error, StopIteration):
        raise CaptionsFileError(f"malformed CSV header: {first[:100]!r}") from None
    csv_columns(header)


def _listed(rows: list[int]) -> str:
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return ", ".join(map(str, rows[:MAX_LISTED])) + more


@dataclass
class Summary:
    rows: int
    labels: dict[str, int]
    mean_caption_chars: float
    sha256: str  # of the bytes read


def check_file(f: BinaryIO, name: str, known_images: set[str] | None = None) -> Summary:
    """Read the whole open file once from its start and refuse it with row numbers if
    anything is wrong."""
    f.seek(0)
    digest = hashlib.sha256()
    missing_image, missing_caption, unknown, duplicate = [], [], [], []
    seen: set[str] = set()
    labels: dict[str, int] = {}
    count, chars = 0, 0
    for row in read_rows(f, name, digest):
        count += 1
        if not row.image:
            missing_image.append(row.row)
        if not row.caption:
            missing_caption.append(row.row)
        if row.image in seen:
            duplicate.append(row.row)
        seen.add(row.image)
        if known_images is not None and row.image and row.image not in known_images:
            unknown.append(row.row)
        labels[row.label or ""] = labels.get(row.label or "", 0) + 1
        chars += len(row.caption)
    problems = [
        (missing_image, "no image name"),
        (missing_caption, "no caption"),
        (duplicate, "an image listed twice"),
        (unknown, "an image not in the dataset"),
    ]
    found = [f"rows {_listed(rows)}: {what}" for rows, what in problems if rows]
    if found:
        raise CaptionsFileError("; ".join(found))
    if count == 0:
        raise CaptionsFileError("the captions file has no rows")
    return Summary(count, labels, chars / count, digest.hexdigest())
