"""Examining functions the scanning processes run in tests (pipeline/scan.py's examine_chunk
replaced): each process imports this module to find them, so it imports little."""

from __future__ import annotations

import os
import time
from pathlib import Path

from analysis_service.datasets.scanner import ScannedFile, examine_chunk
from shared.imaging import ImageLimits

POISON = "poison"
ONCE = "dies-once"
HANG = "never-ends"


def examine_or_die(
    root: Path, files: list[ScannedFile], limits: ImageLimits, roots: list[Path]
) -> list[ScannedFile]:
    """In a scanning process: what examine_chunk does, except that a chunk holding a file
    named like POISON ends the process at once, as a crashing decoder would."""
    if any(POISON in f.relpath for f in files):
        os._exit(70)
    return examine_chunk(root, files, limits, roots)


def examine_or_die_once(
    root: Path, files: list[ScannedFile], limits: ImageLimits, roots: list[Path]
) -> list[ScannedFile]:
    """A process holding a file named like ONCE among others ends, and so does the first that
    holds it alone, as if killed from outside (the out-of-memory killer, an operator): the
    file itself is fine, and reads alone in the next process."""
    if any(ONCE in f.relpath for f in files):
        marker = root.parent / "ended-alone"
        if len(files) > 1 or not marker.exists():
            if len(files) == 1:
                marker.touch()
            os._exit(70)
    return examine_chunk(root, files, limits, roots)


def examine_or_hang(
    root: Path, files: list[ScannedFile], limits: ImageLimits, roots: list[Path]
) -> list[ScannedFile]:
    """A chunk holding a file named like HANG never finishes, as a decoder in an endless loop
    would not."""
    if any(HANG in f.relpath for f in files):
        time.sleep(3600)
    return examine_chunk(root, files, limits, roots)
