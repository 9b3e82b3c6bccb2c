"""Reading captions made elsewhere: CSV or JSONL with image, label and caption.

The SSD-LLM layout loads as is: a CSV whose header is `<subject>,img_name,caption`, the first
column holding the label. Otherwise columns are found by name (image/img_name/path/file/name,
label/class/category, caption/text/description). Problems are reported with row numbers.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.errors import InvalidRequest

IMAGE_COLUMNS = ("img_name", "image", "image_path", "img_path", "path", "file", "filename", "name")
LABEL_COLUMNS = ("label", "class", "class_name", "category")
CAPTION_COLUMNS = ("caption", "text", "description")
MAX_BYTES = 1024 * 1024 * 1024
MAX_LISTED = 10


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


def _text(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 file; bad encoding is reported with its line."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise CaptionsFileError(
                    f"line {number} is not valid UTF-8; save the file as UTF-8"
                ) from None


def _csv_rows(path: Path) -> Iterator[CaptionRow]:
    lines = _text(path)
    first = next(lines, "")
    if not first.strip():
        raise CaptionsFileError("the captions file is empty")
    # Tab-separated exports are common; commas are the default.
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
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


def _jsonl_rows(path: Path) -> Iterator[CaptionRow]:
    for number, line in enumerate(_text(path), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise CaptionsFileError(f"row {number} is not valid JSON") from None
        if not isinstance(item, dict):
            raise CaptionsFileError(f"row {number} is not a JSON object")

        def first(names: tuple[str, ...], item: dict = item) -> str:
            for name in names:
                if isinstance(item.get(name), str | int):
                    return str(item[name]).strip()
            return ""

        yield CaptionRow(
            number, first(IMAGE_COLUMNS), first(LABEL_COLUMNS) or None, first(CAPTION_COLUMNS)
        )


def read_rows(path: Path) -> Iterator[CaptionRow]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    return _csv_rows(path)


def _listed(rows: list[int]) -> str:
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return ", ".join(map(str, rows[:MAX_LISTED])) + more


@dataclass
class Summary:
    rows: int
    labels: dict[str, int]
    mean_caption_chars: float


def check_file(path: Path, known_images: set[str] | None = None) -> Summary:
    """Read the whole file once and refuse it with row numbers if anything is wrong."""
    if path.stat().st_size > MAX_BYTES:
        raise CaptionsFileError(f"captions file larger than {MAX_BYTES} bytes")
    missing_image, missing_caption, unknown, duplicate = [], [], [], []
    seen: set[str] = set()
    labels: dict[str, int] = {}
    count, chars = 0, 0
    for row in read_rows(path):
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
    return Summary(count, labels, chars / count)
