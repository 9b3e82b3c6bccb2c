"""Encoders of row streams: CSV (cells and headers a spreadsheet would run are escaped), JSONL, and
Parquet written one row group at a time into a buffer that is drained after each, so a job of
any size streams with one batch in memory."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.spreadsheet import spreadsheet_safe

BATCH_ROWS = 5000
CHUNK_BYTES = 64 * 1024


async def csv_chunks(header: list[str], rows: AsyncIterator[list[object]]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([spreadsheet_safe(v) for v in header])
    async for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
        if buffer.tell() > CHUNK_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


async def jsonl_chunks(header: list[str], rows: AsyncIterator[list[object]]) -> AsyncIterator[str]:
    lines: list[str] = []
    size = 0
    async for row in rows:
        line = json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False) + "\n"
        lines.append(line)
        size += len(line)
        if size > CHUNK_BYTES:
            yield "".join(lines)
            lines, size = [], 0
    yield "".join(lines)


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they are written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


async def parquet_chunks(
    schema: pa.Schema, batches: AsyncIterator[list[list[object]]]
) -> AsyncIterator[bytes]:
    """A row group per batch of columns, each encoded in a thread and sent as soon as written."""
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema)
    try:
        async for columns in batches:
            await asyncio.to_thread(_write, writer, schema, columns)
            yield sink.drain()
    finally:
        await asyncio.to_thread(writer.close)
    yield sink.drain()


def _write(writer: pq.ParquetWriter, schema: pa.Schema, columns: list[list[object]]) -> None:
    writer.write_batch(pa.record_batch(columns, schema=schema))


async def rows_of(batches: AsyncIterator[list[list[object]]]) -> AsyncIterator[list[object]]:
    """The rows of batches of columns, for the row-wise encoders."""
    async for columns in batches:
        for row in zip(*columns, strict=True):
            yield list(row)


def header_and_types(dimensions: Iterable[str], sets: Iterable[str]) -> tuple[list[str], pa.Schema]:
    """Columns: file_name, class, caption, a column per dimension, and per set its
    `<name>_prediction` and `<name>_correct`."""
    base = ["file_name", "class", "caption"]
    # A dimension named like a fixed column keeps its own column, prefixed.
    named = [f"dimension_{d}" if d in base else d for d in dimensions]
    fields = [pa.field(n, pa.string()) for n in (*base, *named)]
    for name in sets:
        fields += [
            pa.field(f"{name}_prediction", pa.string()),
            pa.field(f"{name}_correct", pa.bool_()),
        ]
    schema = pa.schema(fields)
    return schema.names, schema
