"""A run that outlasts any test: what a pooled process runs on a run of items (a marker file's
path), writing its process id there first. Module-level, so that a pool's processes can
unpickle it by name."""

from __future__ import annotations

import os
import time
from pathlib import Path


def note_pid_then_sleep(items: list[str]) -> list[str]:
    Path(items[0]).write_text(str(os.getpid()))
    time.sleep(300)
    return items
