"""Reading predictions: CSV or JSONL (a file or an upload) or inline JSON, checked row by row.

Columns: `image` and `prediction`, and optionally `label`, `confidence` (0..1) and `split`.
Rows come out in chunks so that a large file is never held whole; problems are gathered with
their row numbers (data rows from 1) and reported together once the file is read.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from shared.errors import InvalidRequest
from shared.paths import NAME_MAX

REQUIRED = ("image", "prediction")
OPTIONAL = ("label", "confidence", "split")
MAX_IMAGE_CHARS = 4096
MAX_CLASS_CHARS = NAME_MAX
MAX_SPLIT_CHARS = 64
#: A file named by path is read up to this size; an upload is held to MAX_REQUEST_BYTES.
MAX_FILE_BYTES = 512 * 1024 * 1024
#: The longest JSONL line or CSV field: a row is a path and a few names.
MAX_LINE_BYTES = 64 * 1024
CHUNK_ROWS = 5000
#: How many problem rows an answer names; the counts cover all of them.
MAX_LISTED = 20
Format = Literal["csv", "jsonl"]


class PredictionsError(InvalidRequest):
    """The predictions cannot be used."""


@dataclass(frozen=True)
class PredictionRow:
    row: int
    image: str
    prediction: str
    label: str | None
    confidence: float | None
    split: str | None


@dataclass
class Problems:
    """Row problems by kind: the first rows of each, and how many there are."""

    listed: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, row: int, what: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.listed.setdefault(kind, [])
        if len(shown) < MAX_LISTED:
            shown.append(f"row {row}{f' ({what})' if what else ''}")

    def raise_any(self) -> None:
        if self.counts:
            raise PredictionsError(self.message())

    def message(self) -> str:
        parts = []
        for kind, count in self.counts.items():
            shown = self.listed[kind]
            more = f" (first {len(shown)})" if count > len(shown) else ""
            parts.append(f"{count} row(s) {kind}{more}: {', '.join(shown)}")
        return "; ".join(parts)


def format_of(filename: str) -> Format:
    """CSV unless the name ends in .jsonl/.ndjson."""
    return "jsonl" if filename.lower().endswith((".jsonl", ".ndjson")) else "csv"


def _text(value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be text")
        value = str(value)
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    return value or None


def _confidence(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("confidence must be a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError("confidence must be a number") from None
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError("confidence must lie in 0..1")
    return number


def check_row(row: int, cells: Mapping[str, object], problems: Problems) -> PredictionRow | None:
    """The row, or None with its problem recorded."""
    try:
        image = _text(cells.get("image"), MAX_IMAGE_CHARS)
        prediction = _text(cells.get("prediction"), MAX_CLASS_CHARS)
        label = _text(cells.get("label"), MAX_CLASS_CHARS)
        split = _text(cells.get("split"), MAX_SPLIT_CHARS)
        confidence = _confidence(cells.get("confidence"))
    except ValueError as exc:
        problems.add("have a bad cell", row, str(exc))
        return None
    if image is None or prediction is None:
        problems.add("lack an image or a prediction", row, "")
        return None
    return PredictionRow(row, image, prediction, label, confidence, split)


def _missing_columns(columns: Iterable[str]) -> None:
    missing = [c for c in REQUIRED if c not in set(columns)]
    if missing:
        raise PredictionsError(
            f"missing column(s) {', '.join(missing)}: the columns are image, prediction "
            f"and optionally {', '.join(OPTIONAL)}"
        )


def _chunks(rows: Iterator[PredictionRow | None]) -> Iterator[list[PredictionRow]]:
    chunk: list[PredictionRow] = []
    for row in rows:
        if row is not None:
            chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _csv_rows(opened: BinaryIO, problems: Problems) -> Iterator[PredictionRow | None]:
    text = io.TextIOWrapper(opened, encoding="utf-8-sig", newline="")
    try:
        yield from _csv_records(csv.reader(text), problems)
    finally:
        text.detach()  # the caller opened the file and closes it


def _csv_records(reader: Iterator[list[str]], problems: Problems) -> Iterator[PredictionRow | None]:
    header = next(reader, None)
    if header is None:
        raise PredictionsError("the predictions file is empty")
    columns = [h.strip().lower() for h in header]
    _missing_columns(columns)
    for number, values in enumerate(reader, start=1):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(columns):
            problems.add("have the wrong number of cells", number, f"{len(values)}")
            continue
        yield check_row(number, dict(zip(columns, values, strict=True)), problems)


def _jsonl_rows(opened: BinaryIO, problems: Problems) -> Iterator[PredictionRow | None]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    number = 0
    while line := opened.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise PredictionsError(f"line {number} is longer than {MAX_LINE_BYTES} bytes")
        text = decoder.decode(line)
        if not text.strip():
            continue
        try:
            cells = json.loads(text)
        except json.JSONDecodeError:
            problems.add("are not JSON", number, "")
            continue
        if not isinstance(cells, dict):
            problems.add("are not JSON objects", number, "")
            continue
        yield check_row(number, cells, problems)


def read_file(opened: BinaryIO, fmt: Format, problems: Problems) -> Iterator[list[PredictionRow]]:
    """Chunks of good rows of a CSV or JSONL file; bad rows go to problems. Raises
    PredictionsError for what makes the whole file unusable (missing columns, not UTF-8, a
    field or line over the limit)."""
    rows = _csv_rows(opened, problems) if fmt == "csv" else _jsonl_rows(opened, problems)
    try:
        yield from _chunks(rows)
    except UnicodeDecodeError:
        raise PredictionsError("the predictions file is not UTF-8 text") from None
    except csv.Error as exc:
        raise PredictionsError(f"the predictions file is not valid CSV: {exc}") from None


def read_inline(items: list[Mapping[str, object]], problems: Problems) -> list[PredictionRow]:
    """The good rows of predictions sent in the request body (rows numbered from 1)."""
    checked = (check_row(n, cells, problems) for n, cells in enumerate(items, start=1))
    return [row for row in checked if row is not None]


def pull(chunks: Iterator[list[PredictionRow]]) -> list[PredictionRow] | None:
    """The next chunk, or None at the end (for calling from a thread, one chunk at a time)."""
    return next(chunks, None)
