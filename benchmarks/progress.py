"""What a job's view says of its stages, as the benchmarks read it."""

from __future__ import annotations

from datetime import datetime


def stage_seconds(stage: dict) -> float:
    """How long a finished stage took: its progress entry's start to its end."""
    start = datetime.fromisoformat(stage["started_at"])
    return (datetime.fromisoformat(stage["finished_at"]) - start).total_seconds()
