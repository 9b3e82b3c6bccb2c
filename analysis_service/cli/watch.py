"""Following a job until it ends: a live bar per stage on a terminal, a line per change
elsewhere (logs, CI), nothing but the final answer with --json."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from analysis_service.cli.api import Api
from analysis_service.cli.render import STAGES, Output, progress_count

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
Job = dict[str, Any]


def _poll(api: Api, job_id: str, interval: float, seen: Callable[[Job], None]) -> Job:
    while True:
        job = api.job(job_id)
        seen(job)
        if job["status"] in TERMINAL:
            return job
        time.sleep(interval)


def _state(job: Job) -> str:
    status = job["status"]
    if job.get("cancel_requested") and status == "running":
        return "running, cancel requested"
    return status


class _Count(ProgressColumn):
    """done/total and the unit; done alone while the total is not known yet."""

    def render(self, task: Task) -> Text:
        total = f"/{task.total:.0f}" if task.total is not None else ""
        return Text(f"{task.completed:.0f}{total} {task.fields.get('unit', '')}")


class _Bars:
    """One rich task per stage, added as the job reaches it; status changes printed above."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.state = ""

    def __call__(self, job: Job) -> None:
        if _state(job) != self.state:
            self.state = _state(job)
            self.progress.console.print(f"job {job['id']}: {self.state}")
        for stage in STAGES:
            if (stage_progress := job["progress"].get(stage)) is not None:
                self._update(stage, stage_progress)

    def _update(self, stage: str, p: dict[str, Any]) -> None:
        done, total = p.get("done", 0), p.get("total")
        if p.get("state") == "done":
            # A stage without a count (summarize) is full once done.
            total = total or max(done, 1)
            done = total
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, unit=p.get("unit", ""))
        self.progress.update(self.tasks[stage], completed=done, total=total)


class _Lines:
    """A line whenever the status, the stage or a stage's state changes:
    `job <id>: running, caption 0/120 images`, `..., caption done 120/120 images`."""

    def __init__(self, out: Output):
        self.out = out
        self.last: tuple[str, str | None, str | None] | None = None

    def __call__(self, job: Job) -> None:
        stage = job.get("stage")
        p = job["progress"].get(stage, {}) if stage else {}
        key = (_state(job), stage, p.get("state"))
        if key == self.last:
            return
        self.last = key
        line = f"job {job['id']}: {key[0]}"
        if stage and job["status"] not in TERMINAL:
            done = " done" if p.get("state") == "done" else ""
            line += f", {stage}{done} {progress_count(p)}"
        self.out.line(line.rstrip())


def watch(api: Api, job_id: str, out: Output, interval: float) -> Job:
    """Poll the job until it has ended; its last view."""
    if out.as_json:
        return _poll(api, job_id, interval, lambda job: None)
    if not out.out.is_terminal:
        return _poll(api, job_id, interval, _Lines(out))
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out.out, refresh_per_second=4) as progress:
        return _poll(api, job_id, interval, _Bars(progress))
