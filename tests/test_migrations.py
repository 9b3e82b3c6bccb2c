"""The migrations build exactly the models' schema, and go down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from analysis_service.db import sqlalchemy_url
from analysis_service.migrate import alembic_config, upgrade
from analysis_service.models import Base


def _diff(url: str) -> list:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, *_: (
                    not (type_ == "table" and name.startswith("procrastinate_"))
                ),
            },
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def test_migrations_match_models(database_url):
    assert _diff(database_url) == []


def test_queue_tables_exist(database_url):
    engine = create_engine(sqlalchemy_url(database_url))
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"procrastinate_jobs", "procrastinate_workers", "job", "assignment"} <= tables


def test_downgrade_then_upgrade(database_url):
    command.downgrade(alembic_config(database_url), "base")
    engine = create_engine(sqlalchemy_url(database_url))
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(database_url)
    assert _diff(database_url) == []


def test_downgrade_folds_image_versions_into_one_row_per_file(database_url):
    """Below 0006 a file has one image row: the newest version stands for the older ones,
    and the jobs that saw those keep their links and assignments."""
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.begin() as conn:
        ds = conn.scalar(
            text(
                "INSERT INTO dataset (id, root_path) VALUES (gen_random_uuid(), '/d') RETURNING id"
            )
        )
        old, new = (
            conn.scalar(
                text(
                    "INSERT INTO image (dataset_id, relpath, class_name, size_bytes, mtime_ns, "
                    "content_hash) VALUES (:ds, 'cat/a.jpg', 'cat', :size, 1, :hash) RETURNING id"
                ),
                {"ds": ds, "size": size, "hash": h * 64},
            )
            for size, h in ((10, "a"), (20, "b"))
        )
        jobs = [
            conn.scalar(
                text(
                    "INSERT INTO job (id, dataset_id, status, options, progress, images, valid, "
                    "invalid, cancel_requested, attempts) VALUES (gen_random_uuid(), :ds, "
                    "'succeeded', '{}', '{}', 1, 1, 0, false, 1) RETURNING id"
                ),
                {"ds": ds},
            )
            for _ in range(2)
        ]
        for job, image in zip(jobs, (old, new), strict=True):
            conn.execute(
                text("INSERT INTO job_image (job_id, image_id) VALUES (:j, :i)"),
                {"j": job, "i": image},
            )
        dim = conn.scalar(
            text(
                "INSERT INTO dimension (job_id, class_name, name, position) "
                "VALUES (:j, 'cat', 'bg', 0) RETURNING id"
            ),
            {"j": jobs[0]},
        )
        attr = conn.scalar(
            text(
                "INSERT INTO attribute (dimension_id, job_id, name, position, is_other, size, "
                "share) VALUES (:d, :j, 'snow', 0, false, 1, 1) RETURNING id"
            ),
            {"d": dim, "j": jobs[0]},
        )
        conn.execute(
            text(
                "INSERT INTO assignment (job_id, image_id, dimension_id, attribute_id) "
                "VALUES (:j, :i, :d, :a)"
            ),
            {"j": jobs[0], "i": old, "d": dim, "a": attr},
        )
    command.downgrade(alembic_config(database_url), "0004")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM image")).scalars().all() == [new]
        links = conn.execute(text("SELECT job_id, image_id FROM job_image")).all()
        assert sorted(links) == sorted((job, new) for job in jobs)
        assert conn.execute(text("SELECT job_id, image_id FROM assignment")).all() == [
            (jobs[0], new)
        ]
    engine.dispose()
    upgrade(database_url)
    assert _diff(database_url) == []


def test_upgrade_fills_jobs_llm_totals_from_their_calls(database_url):
    """Jobs from before 0009 show what their call log says they spent."""
    engine = create_engine(sqlalchemy_url(database_url))
    command.downgrade(alembic_config(database_url), "0008")
    with engine.begin() as conn:
        ds = conn.scalar(
            text(
                "INSERT INTO dataset (id, root_path) VALUES (gen_random_uuid(), '/d') RETURNING id"
            )
        )
        job = conn.scalar(
            text(
                "INSERT INTO job (id, dataset_id, status, options, progress, images, valid, "
                "invalid, cancel_requested, attempts) VALUES (gen_random_uuid(), :ds, "
                "'succeeded', '{}', '{}', 1, 1, 0, false, 1) RETURNING id"
            ),
            {"ds": ds},
        )
        for prompt, completion in ((100, 20), (None, None), (50, 5)):
            conn.execute(
                text(
                    "INSERT INTO llm_call (job_id, step, request_hash, model, mode, "
                    "prompt_tokens, completion_tokens) VALUES (:j, 'dimensions', :h, 'm', 'json', "
                    ":p, :c)"
                ),
                {"j": job, "h": "0" * 64, "p": prompt, "c": completion},
            )
    upgrade(database_url)
    with engine.connect() as conn:
        totals = conn.execute(
            text("SELECT llm_calls, llm_prompt_tokens, llm_completion_tokens FROM job")
        ).one()
    engine.dispose()
    assert tuple(totals) == (3, 150, 25)


def test_scan_identity_columns_go_down_and_up_again(database_url):
    """0010 adds the ctime and inode of image versions; below it they are gone, and versions
    stored meanwhile come back without them (null: their files are read once more)."""
    command.downgrade(alembic_config(database_url), "0009")
    engine = create_engine(sqlalchemy_url(database_url))
    assert not {"ctime_ns", "inode"} & {c["name"] for c in inspect(engine).get_columns("image")}
    engine.dispose()
    upgrade(database_url)
    engine = create_engine(sqlalchemy_url(database_url))
    columns = {c["name"]: c for c in inspect(engine).get_columns("image")}
    engine.dispose()
    assert columns["ctime_ns"]["nullable"] and columns["inode"]["nullable"]
    assert _diff(database_url) == []
