"""Every SQL statement about datasets, their images and the images each job saw."""

from __future__ import annotations

import uuid
from dataclasses import fields
from operator import attrgetter
from typing import NamedTuple

import psycopg
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.datasets.scanner import ScannedFile
from analysis_service.models import Dataset, Image


async def get_or_create_dataset(session: AsyncSession, root_path: str) -> uuid.UUID:
    stmt = (
        insert(Dataset)
        .values(id=uuid.uuid4(), root_path=root_path)
        .on_conflict_do_nothing(index_elements=["root_path"])
    )
    await session.execute(stmt)
    return (
        await session.execute(select(Dataset.id).where(Dataset.root_path == root_path))
    ).scalar_one()


class KnownImage(NamedTuple):
    """The version of a file a scan compares with: the one the job already saw (a resumed
    scan), else the newest one of the dataset."""

    id: int
    in_job: bool
    image: ScannedFile


_FACTS = [f.name for f in fields(ScannedFile)]
_COLUMNS = ", ".join(f"i.{name}" for name in _FACTS)

KNOWN_IMAGES = text(
    f"""
    SELECT known.* FROM unnest(CAST(:relpaths AS text[])) AS asked(relpath)
    CROSS JOIN LATERAL (
        SELECT i.id, EXISTS (SELECT FROM job_image ji
                             WHERE ji.job_id = :job_id AND ji.image_id = i.id) AS in_job,
               {_COLUMNS}
        FROM image i
        WHERE i.dataset_id = :dataset_id AND i.relpath = asked.relpath
        ORDER BY in_job DESC, i.id DESC
        LIMIT 1
    ) known
    """
)
"""One index lookup per path of the batch (a lateral join), and one per version for whether
the job saw it (EXISTS: both keys of job_image's index), whatever the tables' sizes or
statistics: a join with job_image may be planned as a scan of all the job's links per path."""


async def known_images(
    session: AsyncSession, dataset_id: uuid.UUID, job_id: uuid.UUID, relpaths: list[str]
) -> dict[str, KnownImage]:
    """Plain rows, not ORM objects: a re-scan compares every file of a dataset with them."""
    params = {"dataset_id": dataset_id, "job_id": job_id, "relpaths": _Column(relpaths)}
    # all(): one fetch of the batch's rows, not a call per row through the async adapter.
    rows = (await session.execute(KNOWN_IMAGES, params)).all()
    return {row[2]: KnownImage(row[0], row[1], ScannedFile(*row[2:])) for row in rows}


async def has_versions(session: AsyncSession, dataset_id: uuid.UUID) -> bool:
    """Whether any file of the dataset has a stored version (a scan saw the folder before)."""
    found = select(Image.id).where(Image.dataset_id == dataset_id).limit(1)
    return await session.scalar(found) is not None


async def hold_dataset(session: AsyncSession, dataset_id: uuid.UUID, *, exclusive: bool) -> None:
    """Lock the dataset row for this transaction. A scan storing a batch holds it shared,
    a job deletion exclusively: the versions a scan decided to reuse cannot be deleted
    before the scan has linked them."""
    query = select(Dataset.id).where(Dataset.id == dataset_id)
    # Shared: FOR SHARE; exclusive: FOR NO KEY UPDATE, which still lets new jobs reference
    # the dataset.
    await session.execute(query.with_for_update(read=not exclusive, key_share=exclusive))


class _Column(list):  # type: ignore[type-arg]
    """A batch's values of one fact, sent as one array in Postgres' binary format. psycopg
    sends a plain list as text, quoting each value in Python (a regular expression per
    value): for a batch of 2,000 files, several times the cost of the binary format."""


# A list with no typed value (all None, or empty) still goes as text: binary needs a type.
psycopg.adapters.register_dumper(_Column, ListBinaryDumper)


# Postgres array types of the facts, in ScannedFile's order, for unnest.
_ARRAY_TYPES = {
    "relpath": "text[]",
    "class_name": "text[]",
    "size_bytes": "bigint[]",
    "mtime_ns": "bigint[]",
    "ctime_ns": "bigint[]",
    "inode": "bigint[]",
    "content_hash": "text[]",
    "width": "int[]",
    "height": "int[]",
    "format": "text[]",
    "invalid_reason": "text[]",
}
assert list(_ARRAY_TYPES) == _FACTS, "one array type per fact of ScannedFile"
_ARRAYS = ", ".join(f"CAST(:{name} AS {kind})" for name, kind in _ARRAY_TYPES.items())

LINK_VERSIONS = text(
    f"""
    WITH new AS (
        INSERT INTO image (dataset_id, {", ".join(_FACTS)})
        SELECT :dataset_id, * FROM unnest({_ARRAYS})
        RETURNING id
    )
    INSERT INTO job_image (job_id, image_id)
    SELECT :job_id, id FROM new
    UNION ALL SELECT :job_id, i.id FROM image i WHERE i.id = ANY(CAST(:reused AS bigint[]))
    RETURNING image_id
    """
)
"""New versions of files (rows are never updated: earlier jobs keep the versions they saw)
and the job's links to them and to the reused versions that still exist, in one statement: a
scan of a million files sends a few arrays per batch instead of a bind parameter per value.
No ON CONFLICT (its speculative insertion costs a third more): no link can exist already,
see link_versions."""


def _columns(files: list[ScannedFile], names: list[str] = _FACTS) -> dict[str, _Column]:
    return {name: _Column(map(attrgetter(name), files)) for name in names}


# What a stat tells of a file, the facts the stored version is compared with.
_STATED = ["relpath", "class_name", "size_bytes", "mtime_ns", "ctime_ns", "inode", "invalid_reason"]
_STATED_ARRAYS = ", ".join(f"CAST(:{name} AS {_ARRAY_TYPES[name]})" for name in _STATED)

LINK_UNCHANGED = text(
    f"""
    WITH held AS (
        SELECT id FROM dataset WHERE id = :dataset_id FOR SHARE
    ), stated AS (
        SELECT * FROM unnest({_STATED_ARRAYS}) WITH ORDINALITY AS f({", ".join(_STATED)}, n)
    ), compared AS MATERIALIZED (
        SELECT f.n, known.id, known.in_job, COALESCE(
            known.in_job
            OR (known.size_bytes, known.mtime_ns, known.ctime_ns, known.inode)
                = (f.size_bytes, f.mtime_ns, f.ctime_ns, f.inode)
               AND known.class_name IS NOT DISTINCT FROM f.class_name
               AND (f.invalid_reason IS NULL OR f.invalid_reason = known.invalid_reason),
            false) AS kept
        FROM stated f LEFT JOIN LATERAL (
            SELECT i.id, EXISTS (SELECT FROM job_image ji
                                 WHERE ji.job_id = :job_id AND ji.image_id = i.id) AS in_job,
                   i.class_name, i.size_bytes, i.mtime_ns, i.ctime_ns, i.inode, i.invalid_reason
            FROM image i
            WHERE i.dataset_id = (SELECT id FROM held) AND i.relpath = f.relpath
            ORDER BY in_job DESC, i.id DESC
            LIMIT 1
            FOR KEY SHARE OF i
        ) known ON true
    ), linked AS (
        INSERT INTO job_image (job_id, image_id)
        SELECT :job_id, id FROM compared WHERE kept AND NOT in_job
    )
    SELECT n FROM compared WHERE NOT kept
    """
)
"""A batch of stat'ed files compared with their stored versions, the ones still true linked
to the job, in one statement that is its own transaction: the positions (from 1) of the
files that need a new version.

The version compared with is the one the job already saw (a resumed scan keeps it, whatever
the file is now), else the newest. It is still true when class, size, mtime, ctime and inode
all match: writing a file and setting its mtime back still changes its ctime, which no user
can set, and a version stored without ctime or inode (null) never matches. A file the stat
found invalid (a FIFO, a name that is not UTF-8) matches only a version invalid for the same
reason. Unchanged files cost an index lookup and a link each, and no row comes back for
them: a re-scan of an unchanged folder sends a few arrays per batch and receives nothing.

A job deletion may delete versions no other job links (DELETE_UNSHARED_IMAGES), holding the
dataset exclusively. The dataset is held shared here (held, evaluated before any version is
read: the lookup needs its id), so a deletion that starts later waits for this link to be
committed, and its own statement then sees it. One that ended before the lock was granted
may still have deleted versions this statement's snapshot sees: locking a version in the
lookup (FOR KEY SHARE, as the links' reference check does anyway) skips one deleted
since, and the file is read again as if it had none; linking it would fail the check."""


async def link_unchanged(
    session: AsyncSession, dataset_id: uuid.UUID, job_id: uuid.UUID, files: list[ScannedFile]
) -> list[ScannedFile]:
    """Link the files' stored versions that are still true to the job (see LINK_UNCHANGED),
    committed at once; the files that need a new version (hashed and validated, then
    link_versions). The session must have no transaction open."""
    if not files:
        return []
    # In autocommit the statement is its own transaction: one round trip, no BEGIN or COMMIT.
    connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    params = {"dataset_id": dataset_id, "job_id": job_id, **_columns(files, _STATED)}
    positions = (await connection.execute(LINK_UNCHANGED, params)).scalars().all()
    return [files[n - 1] for n in positions]


async def _link(
    session: AsyncSession,
    dataset_id: uuid.UUID,
    job_id: uuid.UUID,
    changed: list[ScannedFile],
    reused: list[int],
) -> set[int]:
    """Store and link; the ids linked."""
    params = {
        "dataset_id": dataset_id,
        "job_id": job_id,
        "reused": _Column(reused),
        **_columns(changed),
    }
    return set((await session.execute(LINK_VERSIONS, params)).scalars().all())


async def link_versions(
    session: AsyncSession,
    dataset_id: uuid.UUID,
    job_id: uuid.UUID,
    changed: list[ScannedFile],
    reused: list[KnownImage],
) -> None:
    """Store new versions of the changed files and link them and the reused known versions
    to the job (those it already saw are linked already). A reused version deleted since it
    was read (with the last job that used it) is stored again, with the same facts."""
    if not changed and not reused:
        return
    await hold_dataset(session, dataset_id, exclusive=False)
    # Held: what exists now stays until this transaction ends. A version the job has not
    # linked yet is linked by no one else meanwhile (the versions of a path are read by the
    # job's plan before its shards exist, then only by the runner of the one scan shard
    # whose range holds it, under the shard's lock; new versions have new ids), so every one
    # that exists is linked here, once, and each one not linked is gone.
    unlinked = list({known.id: known for known in reused if not known.in_job}.values())
    linked = await _link(session, dataset_id, job_id, changed, [k.id for k in unlinked])
    if gone := [known.image for known in unlinked if known.id not in linked]:
        await _link(session, dataset_id, job_id, gone, [])


DELETE_UNSHARED_IMAGES = text(
    """
    DELETE FROM image i USING job_image ji
    WHERE ji.job_id = :job_id AND i.id = ji.image_id
      AND NOT EXISTS (SELECT 1 FROM job_image other
                      WHERE other.image_id = i.id AND other.job_id <> :job_id)
    """
)
"""The image rows (file versions) of a job that no other job saw; the job's links (a
trigger, see models.JobImage) and assignments to them (ON DELETE CASCADE) go with them."""


async def delete_unshared_images(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Call with the job's dataset held exclusively (hold_dataset): a running scan may have
    read a version to reuse that no job links yet."""
    await session.execute(DELETE_UNSHARED_IMAGES, {"job_id": job_id})


async def root_path(session: AsyncSession, dataset_id: uuid.UUID) -> str:
    """The folder (or captions file) a dataset was registered by."""
    return (
        await session.execute(select(Dataset.root_path).where(Dataset.id == dataset_id))
    ).scalar_one()


ANALYZE_IMAGES = text("ANALYZE image, job_image")
"""Refresh the planner's statistics of the image tables."""
ANALYZE_LINKS = text("ANALYZE job_image")


async def analyze_images(session: AsyncSession, *, versions: bool = True) -> None:
    """After a stage added many images: until autovacuum gets to it, the planner would take the
    tables for nearly empty and pick nested loops that cost seconds per page on a new job.
    versions=False: only links were added (a re-scan of unchanged files)."""
    await session.execute(ANALYZE_IMAGES if versions else ANALYZE_LINKS)
