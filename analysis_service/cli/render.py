"""What the command-line client prints: the raw JSON for scripts, else rich tables and trees
for people. Colour follows rich's rules (NO_COLOR, FORCE_COLOR, a terminal or not)."""

from __future__ import annotations

import json
import sys
from pathlib import PurePath
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from analysis_service.cli.api import ApiError

STATUS_STYLE = {
    "queued": "cyan",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
}
STAGES = ("scan", "import", "caption", "discover", "summarize")
BAR_WIDTH = 20
EIGHTHS = " ▏▎▍▌▋▊▉"


class Output:
    """Where and how one command prints: stdout for results, stderr for errors and notes."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def json(self, data: Any) -> None:
        # Plain text on stdout, never through rich: no colours, no wrapping, valid JSON.
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def line(self, *parts: str | Text) -> None:
        """One line of a result, never wrapped (logs and grep see it whole)."""
        self.out.print(*parts, sep="", soft_wrap=True)

    def note(self, message: str) -> None:
        """A line for people, on stderr so that stdout stays the result (or the JSON)."""
        self.err.print(Text(message), soft_wrap=True)

    def api_error(self, error: ApiError) -> None:
        if self.as_json:
            sys.stderr.write(json.dumps(error.body, ensure_ascii=False) + "\n")
            return
        line = Text(f"error: {error.status} {error.code}: ", style="red")
        line.append(error.detail, style="default")
        self.err.print(line, soft_wrap=True)
        for field in error.body.get("fields") or []:
            if isinstance(field, dict):
                self.err.print(Text(f"  {field.get('field')}: {field.get('message')}"))

    def failure(self, message: str) -> None:
        self.err.print(Text(message, style="red"), soft_wrap=True)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def share_bar(share: float, ascii_only: bool, width: int = BAR_WIDTH) -> str:
    """A bar of width characters, filled by share (eighths of a cell where unicode allows)."""
    share = min(max(share, 0.0), 1.0)
    if ascii_only:
        return "#" * round(share * width)
    eighths = round(share * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[part] if part else "")


def _ascii(console: Console) -> bool:
    return not console.encoding.lower().startswith("utf")


def stage_cell(job: dict[str, Any]) -> str:
    stage = job.get("stage")
    if not stage or job["status"] == "succeeded":
        return ""
    progress = job.get("progress", {}).get(stage, {})
    total = progress.get("total")
    if progress.get("state") == "done" or not total:
        return stage
    return f"{stage} {min(progress.get('done', 0) / total, 1.0):.0%}"


def jobs_table(page: dict[str, Any]) -> Table:
    """Narrow enough for 80 columns with whole ids (the full paths are in `status`)."""
    title = f"{len(page['items'])} of {page['total']} jobs, newest first"
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    for name in ("id", "status", "stage"):
        table.add_column(name, no_wrap=True)
    table.add_column("images", justify="right", no_wrap=True)
    table.add_column("dataset", overflow="fold")
    for job in page["items"]:
        source = job.get("captions_path") or job["dataset_path"]
        table.add_row(
            job["id"],
            status_text(job["status"]),
            stage_cell(job),
            str(job["valid"] if job["status"] == "succeeded" else job["images"]),
            PurePath(source).name or source,
        )
    return table


def job_panel(job: dict[str, Any]) -> Table:
    """One job: status, each stage's progress, counts, cost, error and what to do next."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    state = status_text(job["status"])
    if job.get("cancel_requested") and job["status"] == "running":
        state.append(" (cancel requested: stops at its next batch)", style="yellow")
    grid.add_row("job", job["id"])
    grid.add_row("status", state)
    grid.add_row("dataset", job.get("captions_path") or job["dataset_path"])
    for stage in STAGES:
        progress = job.get("progress", {}).get(stage)
        if progress is not None:
            grid.add_row(stage, _stage_line(progress))
    grid.add_row(
        "images", f"{job['images']} found, {job['valid']} analysed, {job['invalid']} skipped"
    )
    if job.get("reasoner") or job.get("caption_engine"):
        grid.add_row("engines", f"captions {job.get('caption_engine')}, {job.get('reasoner')}")
    spent = (job.get("llm") or {}).get("spent") or {}
    if spent.get("calls"):
        grid.add_row("llm", f"{spent['calls']} calls, {spent['tokens']} tokens")
    if job.get("duration_s") is not None:
        grid.add_row("time", f"{job['duration_s']:.1f}s, {job['attempts']} attempt(s)")
    if job.get("error"):
        grid.add_row("error", Text(job["error"], style="red"))
    if job["status"] == "succeeded":
        grid.add_row("next", f"subpop tree {job['id']}")
    return grid


def progress_count(progress: dict[str, Any]) -> str:
    """`12/40 images`; `12 images` while the total is unknown; empty for a stage that counts
    nothing (summarize)."""
    done, total, unit = progress.get("done", 0), progress.get("total"), progress.get("unit", "")
    if total is None:
        return f"{done} {unit}" if done else ""
    return f"{done}/{total} {unit}"


def _stage_line(progress: dict[str, Any]) -> str:
    count = progress_count(progress)
    return f"{progress.get('state') or 'waiting'}{f', {count}' if count else ''}"


def structure_tree(structure: dict[str, Any], console: Console) -> Tree:
    """class -> dimension -> attribute, each attribute with its size, share of its class and
    a bar; an empty 'other' is left out."""
    ascii_only = _ascii(console)
    root = Tree(f"job {structure['job_id']}", guide_style="dim")
    for cls in structure["classes"]:
        node = root.add(Text.assemble((cls["class"], "bold"), f"  {cls['images']} images"))
        for dim in cls["dimensions"]:
            shown = [a for a in dim["attributes"] if not (a["is_other"] and a["size"] == 0)]
            branch = node.add(Text(dim["dimension"], style="cyan"))
            widths = (
                max((len(a["attribute"]) for a in shown), default=0),
                max((len(str(a["size"])) for a in shown), default=0),
            )
            for attr in shown:
                branch.add(_attribute_line(attr, widths, ascii_only))
    return root


def _attribute_line(attr: dict[str, Any], widths: tuple[int, int], ascii_only: bool) -> Text:
    name, size = widths
    line = Text(f"{attr['attribute']:<{name}}", style="dim" if attr["is_other"] else "")
    line.append(f"  {attr['size']:>{size}}  {attr['share'] * 100:5.1f}%  ")
    line.append(share_bar(attr["share"], ascii_only), style="green")
    return line


def slices_table(report: dict[str, Any]) -> Table:
    """Ranked as the API ranks them; * marks the significant ones."""
    title = (
        f"{report['tested']} slices tested (at least {report['min_size']} images), "
        f"{report['significant']} significant at q <= {report['alpha']}"
    )
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("slice", overflow="fold", ratio=1)
    table.add_column("errors", justify="right", no_wrap=True)
    table.add_column("rate (95%)", justify="right", no_wrap=True)
    table.add_column("rest", justify="right", no_wrap=True)
    table.add_column("q", justify="right", no_wrap=True)
    for rank, item in enumerate(report["items"], 1):
        conditions = " & ".join(f"{c['dimension']}={c['attribute']}" for c in item["conditions"])
        table.add_row(
            f"{rank}{'*' if item['significant'] else ''}",
            f"{item['class']}: {conditions}",
            f"{item['errors']}/{item['size']}",
            f"{item['error_rate']:.0%} ({item['ci_low']:.0%}-{item['ci_high']:.0%})",
            f"{item['baseline_error_rate']:.0%}",
            f"{item['q_value']:.2g}",
            style="bold" if item["significant"] else None,
        )
    return table
