"""The options the commands share, the choices the API offers, and the body of a new job."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

ApiUrl = Annotated[
    str, typer.Option("--api", envvar="SUBPOP_API", help="Base URL of the analysis API.")
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--key", envvar="SUBPOP_API_KEY", show_default=False, help="API key, sent as Bearer."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
JobId = Annotated[str, typer.Argument(help="The job's id.", show_default=False)]
Watch = Annotated[bool, typer.Option("--watch", "-w", help="Follow the job until it ends.")]
Interval = Annotated[float, typer.Option(min=0.1, help="Seconds between polls with --watch.")]


class Mode(StrEnum):
    per_class = "per_class"
    organization = "organization"


class AssignmentMode(StrEnum):
    batched = "batched"
    per_image_dimension = "per_image_dimension"


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Format(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


def job_body(path: str, captions: bool, images: str | None, **options: Any) -> dict[str, Any]:
    """The JobCreate body: the inputs and the options given (the API's defaults otherwise)."""
    if images is not None and not captions:
        raise typer.BadParameter("--images goes with --captions", param_hint="--images")
    body: dict[str, Any] = {"captions_path": path} if captions else {"dataset_path": path}
    if images is not None:
        body["dataset_path"] = images
    # Options not given (None, or a flag left off) are not sent: the API's defaults apply.
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    body.update({k: str(v) if isinstance(v, StrEnum) else v for k, v in given.items()})
    return body
