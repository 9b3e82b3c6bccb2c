"""`subpop`: the analysis API from a terminal. Exit codes: 0 done, 1 the job failed or was
cancelled, 2 a usage or request error (the API's detail printed as it sent it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from analysis_service.cli.api import DEFAULT_API, Api, ApiError, BadApiUrl, Unreachable
from analysis_service.cli.api import read_chunks as _chunks
from analysis_service.cli.download import save
from analysis_service.cli.options import (
    ApiKey,
    ApiUrl,
    AsJson,
    AssignmentMode,
    Format,
    Interval,
    JobId,
    Mode,
    Status,
    Watch,
    job_body,
)
from analysis_service.cli.render import (
    Output,
    job_panel,
    jobs_table,
    slices_table,
    status_text,
    structure_tree,
)
from analysis_service.cli.watch import watch

app = typer.Typer(
    name="subpop",
    help="Discover the subpopulations of image datasets through the analysis API.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback with locals would print the API key; errors are handled below instead.
    pretty_exceptions_enable=False,
)

EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


@contextmanager
def session(api_url: str, key: str | None, as_json: bool) -> Iterator[tuple[Api, Output]]:
    """The API and the output of one command; a request that fails ends it with exit 2."""
    out = Output(as_json)
    try:
        with Api(api_url, key) as api:
            yield api, out
    except (BadApiUrl, Unreachable) as exc:
        out.failure(str(exc))
        raise typer.Exit(EXIT_ERROR) from None
    except ApiError as exc:
        out.api_error(exc)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        # Not click's "Aborted!" with exit 1, which scripts would read as a failed job.
        out.note("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _code(job: dict[str, Any]) -> int:
    return EXIT_FAILED if job["status"] in ("failed", "cancelled") else 0


def _show_end(api: Api, out: Output, job: dict[str, Any]) -> None:
    if out.as_json:
        out.json(job)
    elif job["status"] == "succeeded":
        out.out.print(structure_tree(api.structure(job["id"]), out.out))
    else:
        out.out.print(job_panel(job))


def _follow(api: Api, out: Output, job_id: str, interval: float) -> NoReturn:
    """Watch the job to its end, show the outcome (the tree when it succeeded), exit by it."""
    try:
        job = watch(api, job_id, out, interval)
    except KeyboardInterrupt:
        out.note(f"stopped watching; the job goes on: subpop status {job_id} --watch")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _show_end(api, out, job)
    raise typer.Exit(_code(job))


@app.command()
def submit(
    path: Annotated[
        str,
        typer.Argument(
            help="Dataset folder (or captions file with --captions) as the service sees it: "
            "absolute, or relative to one of its DATA_ROOTS.",
            show_default=False,
        ),
    ],
    captions: Annotated[
        bool, typer.Option("--captions", help="PATH is a CSV/JSONL captions file.")
    ] = False,
    images: Annotated[
        str | None, typer.Option(help="With --captions: the folder whose images the rows name.")
    ] = None,
    mode: Annotated[Mode | None, typer.Option(help="Default: per_class.")] = None,
    criterion: Annotated[str | None, typer.Option(help="The one dimension to build.")] = None,
    num_attributes: Annotated[
        int | None, typer.Option("-k", "--num-attributes", help="Exactly K (organization).")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="How prompts name the images.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every sampling step.")] = None,
    budget: Annotated[int | None, typer.Option(help="LLM token budget of the job.")] = None,
    assignment_mode: Annotated[AssignmentMode | None, typer.Option()] = None,
    class_hint: Annotated[
        bool,
        typer.Option("--class-hint", help="Name the class in the caption prompt (reference runs)."),
    ] = False,
    watch: Watch = False,
    interval: Interval = 0.5,
    api: ApiUrl = DEFAULT_API,
    key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Start a job; with --watch, follow it and print its tree."""
    body = job_body(
        path,
        captions,
        images,
        mode=mode,
        criterion=criterion,
        num_attributes=num_attributes,
        subject=subject,
        seed=seed,
        token_budget=budget,
        assignment_mode=assignment_mode,
        caption_class_hint=class_hint,
    )
    with session(api, key, as_json) as (client, out):
        accepted = client.submit(body)
        if watch:
            _follow(client, out, accepted["id"], interval)
        if as_json:
            out.json(accepted)
        else:
            out.line(f"job {accepted['id']} queued on {accepted['dataset_path']}")
            out.note(f"follow it: subpop status {accepted['id']} --watch")


@app.command()
def jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    status: Annotated[Status | None, typer.Option(help="Only jobs in this status.")] = None,
    api: ApiUrl = DEFAULT_API,
    key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """The jobs, newest first."""
    with session(api, key, as_json) as (client, out):
        page = client.jobs(limit, offset, status.value if status else None)
        out.json(page) if as_json else out.out.print(jobs_table(page))


@app.command()
def status(
    job_id: JobId,
    watch: Watch = False,
    interval: Interval = 0.5,
    api: ApiUrl = DEFAULT_API,
    key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """A job's status and progress; exit 1 when it failed or was cancelled."""
    with session(api, key, as_json) as (client, out):
        if watch:
            _follow(client, out, job_id, interval)
        job = client.job(job_id)
        out.json(job) if as_json else out.out.print(job_panel(job))
    raise typer.Exit(_code(job))


@app.command()
def tree(job_id: JobId, api: ApiUrl = DEFAULT_API, key: ApiKey = None, as_json: AsJson = False):
    """A finished job's structure: class -> dimension -> attribute, with sizes and shares."""
    with session(api, key, as_json) as (client, out):
        structure = client.structure(job_id)
        out.json(structure) if as_json else out.out.print(structure_tree(structure, out.out))


@app.command()
def cancel(job_id: JobId, api: ApiUrl = DEFAULT_API, key: ApiKey = None, as_json: AsJson = False):
    """Cancel a job; a running one stops at its next batch."""
    with session(api, key, as_json) as (client, out):
        job = client.cancel(job_id)
        if as_json:
            out.json(job)
            return
        line = status_text(job["status"])
        if job.get("cancel_requested") and job["status"] == "running":
            line.append(": asked to stop at its next batch")
        out.line(f"job {job['id']}: ", line)


@app.command()
def retry(
    job_id: JobId,
    watch: Watch = False,
    interval: Interval = 0.5,
    api: ApiUrl = DEFAULT_API,
    key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Queue a failed or cancelled job again; finished work is kept."""
    with session(api, key, as_json) as (client, out):
        job = client.retry(job_id)
        if watch:
            _follow(client, out, job["id"], interval)
        out.json(job) if as_json else out.line(f"job {job['id']} queued again")


@app.command()
def delete(job_id: JobId, api: ApiUrl = DEFAULT_API, key: ApiKey = None, as_json: AsJson = False):
    """Delete a job and its results (never the dataset's files)."""
    with session(api, key, as_json) as (client, out):
        client.delete(job_id)
        out.json({"id": job_id, "deleted": True}) if as_json else out.line(f"job {job_id} deleted")


@app.command()
def slices(
    job_id: JobId,
    predictions: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, readable=True, help="CSV/JSONL predictions to upload."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the uploaded set.")] = None,
    set_id: Annotated[
        int | None, typer.Option("--set", help="A prediction set already posted (its id).")
    ] = None,
    class_: Annotated[str | None, typer.Option("--class", help="Only this class.")] = None,
    min_size: Annotated[int | None, typer.Option(help="Smallest slice tested.")] = None,
    max_conditions: Annotated[int | None, typer.Option(help="1: attributes; 2: pairs.")] = None,
    alpha: Annotated[float | None, typer.Option(help="False discovery rate.")] = None,
    limit: Annotated[int | None, typer.Option(help="Slices shown.")] = None,
    api: ApiUrl = DEFAULT_API,
    key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Where a model errs: upload its predictions (or name a set), rank the slices."""
    if (predictions is None) == (set_id is None):
        raise typer.BadParameter("give --predictions FILE or --set ID", param_hint="--predictions")
    options: dict[str, Any] = {"class": class_, "min_size": min_size, "alpha": alpha}
    options |= {"max_conditions": max_conditions, "limit": limit}
    with session(api, key, as_json) as (client, out):
        if predictions is not None:
            created = client.upload_predictions(job_id, predictions, name)
            set_id = created["id"]
            if not as_json:
                out.line(
                    f"prediction set {set_id} ({created['name'] or 'unnamed'}): "
                    f"{created['rows']} rows, {created['matched']} matched, "
                    f"accuracy {created['accuracy']:.1%}"
                )
        params = {"predictions": set_id} | {k: v for k, v in options.items() if v is not None}
        report = client.slices(job_id, params)
        out.json(report) if as_json else out.out.print(slices_table(report))


@app.command()
def export(
    job_id: JobId,
    format: Annotated[Format, typer.Option("--format", "-f")] = Format.parquet,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Default: export-<id>.<format>."),
    ] = None,
    api: ApiUrl = DEFAULT_API,
    key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """One row per image of a finished job, streamed to a file."""
    path = output or Path(f"export-{job_id}.{format.value}")
    with session(api, key, as_json) as (client, out):
        with client.export(job_id, format.value) as response:
            written = save(_chunks(response, client.base_url), path, out, f"export {format}")
        summary = {"path": str(path), "bytes": written, "format": format.value}
        out.json(summary) if as_json else out.line(f"wrote {written} bytes to {path}")


def run() -> None:
    """The console script."""
    app(prog_name="subpop")
