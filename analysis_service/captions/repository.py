"""Every SQL statement about captions: caption keys, what a job still has to caption, storing
generated and imported captions, and the captioned images discovery works from."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    Select,
    Text,
    bindparam,
    cast,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from analysis_service.models import Caption, CaptionConfig, Image, Job, JobImage
from shared.caption_contract import EngineInfo

#: The one group of organization mode, where all images are pooled as one subject.
POOLED_GROUP = "all"


class PendingImage(NamedTuple):
    image_id: int
    content_hash: str
    relpath: str
    class_name: str | None


def caption_row(
    key: str,
    info: EngineInfo,
    source: str,
    content_hash: str,
    caption: str,
    *,
    prompt_tokens: int | None = None,
    output_tokens: int | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """The values of one caption row."""
    return {
        "content_hash": content_hash,
        "caption_key": key,
        "engine": info.engine,
        "model": info.model,
        "prompt_version": info.prompt_version,
        "source": source,
        "text": caption,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "finish_reason": finish_reason,
    }


async def register_key(session: AsyncSession, key: str, info: EngineInfo) -> None:
    """Store what a caption key stands for, once."""
    await session.execute(
        insert(CaptionConfig)
        .values(caption_key=key, info=info.model_dump(mode="json"))
        .on_conflict_do_nothing()
    )


_CAPTION_ARRAYS = {
    "content_hash": "text[]",
    "caption_key": "text[]",
    "engine": "text[]",
    "model": "text[]",
    "prompt_version": "text[]",
    "source": "text[]",
    "text": "text[]",
    "prompt_tokens": "int[]",
    "output_tokens": "int[]",
    "finish_reason": "text[]",
}
INSERT_CAPTIONS = text(
    f"""
    INSERT INTO caption ({", ".join(_CAPTION_ARRAYS)})
    SELECT * FROM unnest({", ".join(f"CAST(:{c} AS {t})" for c, t in _CAPTION_ARRAYS.items())})
    ON CONFLICT DO NOTHING
    """
)
"""Captions as one array per column: a multi-row VALUES costs more to compile than to run."""


async def insert_captions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Captions made by caption_row; a caption already stored for the same bytes and key wins."""
    if rows:
        columns = {c: [r[c] for r in rows] for c in _CAPTION_ARRAYS}
        await session.execute(INSERT_CAPTIONS, columns)


JobId = uuid.UUID | BindParameter[Any]


def _valid_images_of(job_id: JobId) -> Select:
    return (
        select(Image.id)
        .select_from(JobImage)
        .join(Image, Image.id == JobImage.image_id)
        .where(JobImage.job_id == job_id, Image.invalid_reason.is_(None))
    )


def _pending(job_id: JobId, key: str | BindParameter[Any]) -> Select:
    """The job's valid images with no caption under key yet; identical files are captioned
    once, so only the lowest image id of each content hash is listed."""
    twin_link, twin = aliased(JobImage), aliased(Image)
    has_caption = exists().where(
        Caption.content_hash == Image.content_hash, Caption.caption_key == key
    )
    has_earlier_twin = (
        select(twin.id)
        .select_from(twin_link)
        .join(twin, twin.id == twin_link.image_id)
        .where(
            twin_link.job_id == JobImage.job_id,
            twin.content_hash == Image.content_hash,
            twin.id < Image.id,
            twin.invalid_reason.is_(None),
        )
        .exists()
    )
    return _valid_images_of(job_id).where(
        JobImage.caption_error.is_(None), ~has_caption, ~has_earlier_twin
    )


async def count_valid(session: AsyncSession, job_id: uuid.UUID) -> int:
    query = _valid_images_of(job_id).with_only_columns(func.count())
    return int(await session.scalar(query) or 0)


def _in_range(query: Select, first: int | None, before: int | None) -> Select:
    """Images with ids from first (included) to before (excluded); None: open."""
    if first is not None:
        query = query.where(JobImage.image_id >= first)
    if before is not None:
        query = query.where(JobImage.image_id < before)
    return query


async def count_pending(
    session: AsyncSession,
    job_id: uuid.UUID,
    key: str,
    first: int | None = None,
    before: int | None = None,
) -> int:
    query = _in_range(_pending(job_id, key), first, before).with_only_columns(func.count())
    return int(await session.scalar(query) or 0)


def _page_query(bounded: bool) -> Select:
    query = (
        _pending(bindparam("job_id"), bindparam("key"))
        .with_only_columns(Image.id, Image.content_hash, Image.relpath, Image.class_name)
        .where(JobImage.image_id > bindparam("after"))
        .order_by(JobImage.image_id)
        .limit(bindparam("limit"))
    )
    return query.where(JobImage.image_id < bindparam("before")) if bounded else query


#: pending_page's statement, with an upper bound and without, built once: building it (its
#: subqueries and aliases) and deriving its cache key cost a caption shard's reader more than
#: the query itself, once per page.
_PAGE_QUERIES = {bounded: _page_query(bounded) for bounded in (False, True)}


async def pending_page(
    session: AsyncSession,
    job_id: uuid.UUID,
    key: str,
    after: int,
    limit: int,
    before: int | None = None,
) -> list[PendingImage]:
    """The next uncaptioned images after an image id, and before another (keyset paging on
    job_image's key)."""
    params: dict[str, Any] = {"job_id": job_id, "key": key, "after": after, "limit": limit}
    if before is not None:
        params["before"] = before
    rows = await session.execute(_PAGE_QUERIES[before is not None], params)
    return [PendingImage._make(row) for row in rows]


async def pending_starts(
    session: AsyncSession, job_id: uuid.UUID, key: str, every: int
) -> list[int]:
    """The ids of the 1st, (every+1)th, (2*every+1)th, ... image still to caption: where the
    caption stage's shards start. One pass in the database, not a million ids sent over."""
    numbered = (
        _pending(job_id, key)
        .with_only_columns(
            JobImage.image_id.label("image_id"),
            func.row_number().over(order_by=JobImage.image_id).label("n"),
        )
        .subquery()
    )
    query = (
        select(numbered.c.image_id)
        .where((numbered.c.n - 1) % every == 0)
        .order_by(numbered.c.image_id)
    )
    return list(await session.scalars(query))


async def record_failure(
    session: AsyncSession, job_id: uuid.UUID, content_hash: str, reason: str
) -> None:
    """Every image of the job with these bytes shares the caption failure."""
    await session.execute(
        update(JobImage)
        .where(
            JobImage.job_id == job_id,
            JobImage.image_id.in_(select(Image.id).where(Image.content_hash == content_hash)),
        )
        .values(caption_error=f"caption failed: {reason}")
    )


MATCH_IMPORTED_NAMES = text(
    """
    SELECT DISTINCT ON (name) name, i.content_hash
    FROM unnest(CAST(:names AS text[])) AS name
    JOIN job_image ji ON ji.job_id = :job_id
    JOIN image i ON i.id = ji.image_id AND i.invalid_reason IS NULL
     AND (i.relpath = name OR regexp_replace(i.relpath, '^.*/', '') = name)
    ORDER BY name, (i.relpath = name) DESC, i.id
    """
)
"""The content hash of the job's image each imported name means: its relative path, else its
file name (an exact path wins over a file name, then the lowest image id)."""


async def match_imported_names(
    session: AsyncSession, job_id: uuid.UUID, names: list[str]
) -> dict[str, str]:
    rows = await session.execute(MATCH_IMPORTED_NAMES, {"names": names, "job_id": job_id})
    return {name: content_hash for name, content_hash in rows}


async def mark_uncaptioned(session: AsyncSession, job_id: uuid.UUID, key: str) -> None:
    """Valid images an imported file gave no caption are skipped, with the reason."""
    without_caption = ~exists().where(
        Caption.content_hash == Image.content_hash, Caption.caption_key == key
    )
    await session.execute(
        update(JobImage)
        .where(
            JobImage.job_id == job_id,
            JobImage.image_id == Image.id,
            Image.invalid_reason.is_(None),
            without_caption,
        )
        .values(caption_error="no caption in the imported file")
    )


DELETE_UNSHARED_CAPTIONS = text(
    """
    DELETE FROM caption c
    USING (SELECT DISTINCT i.content_hash FROM job_image ji JOIN image i ON i.id = ji.image_id
           WHERE ji.job_id = :job_id AND i.content_hash IS NOT NULL) mine
    WHERE c.caption_key = :key AND c.content_hash = mine.content_hash
      AND NOT EXISTS (
          SELECT 1 FROM image o
          JOIN job_image oji ON oji.image_id = o.id
          JOIN job j ON j.id = oji.job_id
          WHERE o.content_hash = c.content_hash AND j.id <> :job_id AND j.caption_key = :key)
    """
)
"""The captions a job used (its images' content hashes under its caption key) that no other
job uses."""


async def delete_unshared_captions(
    session: AsyncSession, job_id: uuid.UUID, key: str | None
) -> None:
    """Before the job's image links go (they say which captions it used)."""
    if key is not None:
        await session.execute(DELETE_UNSHARED_CAPTIONS, {"job_id": job_id, "key": key})


def group_of(pooled: bool) -> ColumnElement[Any]:
    """What discovery groups images by: their class, or one pooled group."""
    if pooled:
        # Rendered as a constant, so the same expression groups and selects.
        return cast(literal(POOLED_GROUP, literal_execute=True), Text)
    return Image.class_name.expression


def captioned(job_id: uuid.UUID, *columns: Any) -> Select:
    """The job's images that have a caption under the job's key, with the given columns.

    A job's images are all of its dataset: saying so lets a query of one class find it by
    the image index on (dataset_id, class_name, id) instead of reading every image."""
    return (
        select(*columns)
        .select_from(JobImage)
        .join(Job, Job.id == JobImage.job_id)
        .join(Image, (Image.id == JobImage.image_id) & (Image.dataset_id == Job.dataset_id))
        .join(
            Caption,
            (Caption.content_hash == Image.content_hash) & (Caption.caption_key == Job.caption_key),
        )
        .where(
            JobImage.job_id == job_id,
            Image.invalid_reason.is_(None),
            JobImage.caption_error.is_(None),
        )
    )


async def captioned_groups(
    session: AsyncSession, job_id: uuid.UUID, pooled: bool, lead_in: str | None = None
) -> list[tuple[str, int, float]]:
    """Each group's name, captioned images and mean caption length in characters, by name;
    counted without the text that `lead_in` (a case-insensitive regular expression) matches,
    when given."""
    group = group_of(pooled)
    text = Caption.text if lead_in is None else func.regexp_replace(Caption.text, lead_in, "", "i")
    query = (
        captioned(job_id, group, func.count(), func.avg(func.length(text)))
        .group_by(group)
        .order_by(group)
    )
    return [(name, int(n), float(chars or 0)) for name, n, chars in await session.execute(query)]


async def sample_captions(
    session: AsyncSession, job_id: uuid.UUID, group: str, pooled: bool, seed: int, limit: int
) -> list[str]:
    """A seeded, repeatable sample of a group's captions: ordered by a hash of content and seed."""
    query = (
        captioned(job_id, Caption.text)
        .where(group_of(pooled) == group)
        .order_by(func.md5(Image.content_hash.concat(str(seed))), Image.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


ANALYZE_CAPTIONS = text("ANALYZE caption")
"""Refresh the planner's statistics of the caption table."""


async def analyze_captions(session: AsyncSession) -> None:
    """After a stage added many captions (see datasets.repository.analyze_images)."""
    await session.execute(ANALYZE_CAPTIONS)
