"""A finished job written straight into the database: images, their classes, a structure and
every assignment, without scanning, captioning or discovery. For benchmarks and tests of what
is built on a finished job (predictions, slices, groups, exports) at any size."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import (
    Assignment,
    Attribute,
    Caption,
    Dataset,
    Dimension,
    Image,
    Job,
    JobClass,
    JobImage,
)

CAPTION_KEY = "synthetic"
CHUNK = 20000


@dataclass(frozen=True)
class SyntheticImage:
    relpath: str
    class_name: str
    attributes: dict[str, str] = field(default_factory=dict)  # dimension -> attribute
    caption: str | None = None


def _chunks(rows: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


async def _insert(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    # executemany: one statement compiled once, its rows sent in batches by the driver.
    for chunk in _chunks(rows):
        await session.execute(insert(table), list(chunk))


async def _images(session: AsyncSession, dataset_id: uuid.UUID, images: list[SyntheticImage]):
    ids: list[int] = []
    for chunk in _chunks(images):
        rows = [
            {
                "dataset_id": dataset_id,
                "relpath": image.relpath,
                "class_name": image.class_name,
                "size_bytes": 0,
                "mtime_ns": 0,
                "content_hash": hashlib.sha256(image.relpath.encode()).hexdigest(),
            }
            for image in chunk
        ]
        returning = insert(Image).returning(Image.id, sort_by_parameter_order=True)
        ids += list(await session.scalars(returning, rows))
    return ids


async def _structure(
    session: AsyncSession, job_id: uuid.UUID, images: list[SyntheticImage]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(class, dimension, attribute) -> (dimension id, attribute id), in order of appearance."""
    tree: dict[str, dict[str, dict[str, int]]] = {}
    for image in images:
        for dim, attr in image.attributes.items():
            attrs = tree.setdefault(image.class_name, {}).setdefault(dim, {})
            attrs[attr] = attrs.get(attr, 0) + 1
    ids = {}
    for class_name, dims in tree.items():
        total = sum(1 for image in images if image.class_name == class_name)
        for d_pos, (dim, attrs) in enumerate(dims.items()):
            dim_id = await session.scalar(
                insert(Dimension)
                .values(job_id=job_id, class_name=class_name, name=dim, position=d_pos)
                .returning(Dimension.id)
            )
            for a_pos, (attr, size) in enumerate(attrs.items()):
                attr_id = await session.scalar(
                    insert(Attribute)
                    .values(
                        dimension_id=dim_id,
                        job_id=job_id,
                        name=attr,
                        position=a_pos,
                        is_other=attr == "other",
                        size=size,
                        share=size / total,
                    )
                    .returning(Attribute.id)
                )
                assert dim_id is not None and attr_id is not None
                ids[(class_name, dim, attr)] = (dim_id, attr_id)
    return ids


async def insert_job(
    session: AsyncSession, images: list[SyntheticImage], status: str = "succeeded"
) -> uuid.UUID:
    """A job over these images with their assignments; it ends as `status` (flushed only)."""
    dataset_id, job_id = uuid.uuid4(), uuid.uuid4()
    await session.execute(insert(Dataset).values(id=dataset_id, root_path=f"/synthetic/{job_id}"))
    await session.execute(
        insert(Job).values(
            id=job_id,
            dataset_id=dataset_id,
            status=status,
            caption_key=CAPTION_KEY,
            images=len(images),
            valid=len(images),
        )
    )
    image_ids = await _images(session, dataset_id, images)
    await _insert(session, JobImage, [{"job_id": job_id, "image_id": i} for i in image_ids])
    sizes: dict[str, int] = {}
    for image in images:
        sizes[image.class_name] = sizes.get(image.class_name, 0) + 1
    classes = [{"job_id": job_id, "class_name": c, "images": n} for c, n in sizes.items()]
    await _insert(session, JobClass, classes)
    ids = await _structure(session, job_id, images)
    assignments = [
        {
            "job_id": job_id,
            "image_id": image_id,
            "dimension_id": ids[(image.class_name, dim, attr)][0],
            "attribute_id": ids[(image.class_name, dim, attr)][1],
        }
        for image, image_id in zip(images, image_ids, strict=True)
        for dim, attr in image.attributes.items()
    ]
    await _insert(session, Assignment, assignments)
    captions = [
        {
            "content_hash": hashlib.sha256(image.relpath.encode()).hexdigest(),
            "caption_key": CAPTION_KEY,
            "engine": "synthetic",
            "model": "synthetic",
            "prompt_version": "synthetic",
            "text": image.caption,
        }
        for image in images
        if image.caption is not None
    ]
    for chunk in _chunks(captions):  # captions are shared by content: another job may hold one
        await session.execute(pg_insert(Caption).on_conflict_do_nothing(), list(chunk))
    return job_id
