"""A finished job of ImageNet size written by the database itself (generate_series), in a minute
rather than the hour that sending a million rows from Python takes: images of `classes`
classes, `dimensions` dimensions of `attributes` attributes per class with skewed sizes, every
assignment, caption and LLM call. For benchmarks of queries on big jobs;
benchmarks.synthetic_job writes smaller jobs whose rows the caller chooses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from analysis_service.db import libpq_url

CAPTION_KEY = "synthetic-large"


@dataclass(frozen=True)
class LargeJobShape:
    images: int = 1_000_000
    classes: int = 1000
    dimensions: int = 3
    attributes: int = 5
    calls_per_class: int = 150


# Each statement runs on the server; :ds, :job and the shape's fields are bound.
STATEMENTS = (
    "INSERT INTO dataset (id, root_path) VALUES (:ds, '/synthetic/' || :job)",
    """INSERT INTO job (id, dataset_id, status, options, progress, images, valid, invalid,
                        caption_key, reasoner, cancel_requested, attempts, started_at, finished_at)
       VALUES (:job, :ds, 'succeeded', '{}', '{}', :images, :images, 0, :key, 'synthetic',
               false, 1, now(), now())""",
    # Classes take images in turn; the content hash is any 64 hex characters unique per image.
    """INSERT INTO image (dataset_id, relpath, class_name, size_bytes, mtime_ns, content_hash)
       SELECT :ds, 'class' || lpad((g % :classes)::text, 4, '0') || '/' || lpad(g::text, 8, '0')
                   || '.jpg',
              'class' || lpad((g % :classes)::text, 4, '0'), 1000, 0,
              md5(g::text) || md5((g + 1)::text)
       FROM generate_series(0, :images - 1) AS g""",
    "INSERT INTO job_image (job_id, image_id) SELECT :job, id FROM image WHERE dataset_id = :ds",
    """INSERT INTO job_class (job_id, class_name, images, structured_at, assigned_at)
       SELECT :job, class_name, count(*), now(), now() FROM image WHERE dataset_id = :ds
       GROUP BY class_name""",
    """INSERT INTO dimension (job_id, class_name, name, position)
       SELECT :job, c.class_name, 'dimension' || d, d
       FROM job_class AS c, generate_series(0, :dimensions - 1) AS d WHERE c.job_id = :job""",
    """INSERT INTO attribute (dimension_id, job_id, name, position, is_other, size, share)
       SELECT dim.id, :job, 'attribute' || dim.position || '.' || a, a, a = :attributes - 1, 0, 0
       FROM dimension AS dim, generate_series(0, :attributes - 1) AS a WHERE dim.job_id = :job""",
    # Skewed sizes (the square of a uniform draw, hashed from the image and dimension): the
    # first attribute of a dimension is the biggest, as real ones are.
    """INSERT INTO assignment (job_id, image_id, dimension_id, attribute_id)
       SELECT :job, i.id, dim.id, attr.id
       FROM image AS i
       JOIN dimension AS dim ON dim.job_id = :job AND dim.class_name = i.class_name
       JOIN attribute AS attr ON attr.dimension_id = dim.id
        AND attr.position = floor(:attributes
              * power((abs(hashint8(i.id * 31 + dim.position)) % 10000) / 10000.0, 2))
       WHERE i.dataset_id = :ds""",
    """UPDATE attribute SET size = counted.size, share = counted.size::float / c.images
       FROM (SELECT attribute_id, count(*) AS size FROM assignment WHERE job_id = :job
             GROUP BY attribute_id) AS counted,
            dimension AS dim, job_class AS c
       WHERE attribute.id = counted.attribute_id AND dim.id = attribute.dimension_id
         AND c.job_id = :job AND c.class_name = dim.class_name""",
    """INSERT INTO caption (content_hash, caption_key, engine, model, prompt_version, source, text)
       SELECT content_hash, :key, 'synthetic', 'synthetic', 'synthetic', 'generated',
              'a synthetic image of ' || class_name || ' number ' || id
       FROM image WHERE dataset_id = :ds
       ON CONFLICT DO NOTHING""",
    # The LLM calls of per-class discovery (about 150 a class) and the job's totals of them.
    """INSERT INTO llm_call (job_id, step, subject, request_hash, model, mode, prompt_tokens,
                             completion_tokens, latency_ms)
       SELECT :job, 'dimensions', c.class_name, md5(c.class_name || n), 'synthetic',
              'json_schema', 400 + n, 60, 900
       FROM job_class AS c, generate_series(1, :calls_per_class) AS n WHERE c.job_id = :job""",
    """UPDATE job SET llm_calls = spent.calls, llm_prompt_tokens = spent.prompt,
                      llm_completion_tokens = spent.completion
       FROM (SELECT count(*) AS calls, sum(prompt_tokens) AS prompt,
                    sum(completion_tokens) AS completion
             FROM llm_call WHERE job_id = :job) AS spent
       WHERE job.id = :job""",
)


async def write_large_job(conn: AsyncConnection, shape: LargeJobShape) -> uuid.UUID:
    """Write the job in the connection's transaction; its id. VACUUM (ANALYZE) the tables
    after commit: the planner must see their sizes, as it does after a real job, and
    autovacuum would otherwise come within a minute or so and vacuum them while they are
    measured."""
    job_id = uuid.uuid4()
    params = {
        "ds": uuid.uuid4(),
        "job": job_id,
        "key": CAPTION_KEY,
        "images": shape.images,
        "classes": shape.classes,
        "dimensions": shape.dimensions,
        "attributes": shape.attributes,
        "calls_per_class": shape.calls_per_class,
    }
    for statement in STATEMENTS:
        await conn.execute(text(statement), params)
    return job_id


#: The tables the job fills, to VACUUM (ANALYZE) after it is written.
ANALYZED = (
    *("image", "job_image", "job_class", "dimension", "attribute", "assignment", "caption"),
    "llm_call",
)


def vacuumed(url: str) -> None:
    """VACUUM (ANALYZE) the tables a job fills, as autovacuum does within a minute or so of
    it: what is measured after a job (its queries, a re-scan of its folder) would otherwise
    share the cores with that work, or run on tables whose statistics do not know the job's
    rows."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for table in ANALYZED:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
