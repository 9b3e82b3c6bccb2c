"""Saving a streamed answer to a file, with a byte counter on a terminal. The file appears
only once it is whole: bytes go to a temporary file beside it, renamed at the end."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rich.progress import (
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from analysis_service.cli.render import Output


def save(chunks: Iterable[bytes], path: Path, out: Output, label: str) -> int:
    """Write the chunks to path; the bytes written. Nothing is left at path on failure."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            written = _copy(chunks, f, out, label)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return written


def _copy(chunks: Iterable[bytes], f: object, out: Output, label: str) -> int:
    write = f.write  # type: ignore[attr-defined]
    written = 0
    if out.as_json or not out.err.is_terminal:
        for chunk in chunks:
            written += write(chunk)
        return written
    # The server streams without a Content-Length: a running count and rate, no percentage.
    columns = (
        SpinnerColumn(),
        TextColumn(label),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out.err, transient=True) as progress:
        task = progress.add_task(label, total=None)
        for chunk in chunks:
            written += write(chunk)
            progress.update(task, completed=written)
    return written
