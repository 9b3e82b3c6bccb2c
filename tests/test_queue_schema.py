"""The queue's tables come from the migrations, pinned to one procrastinate version: an upgrade
of the package without a revision applying its SQL migrations fails here, saying what to do."""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
from procrastinate.schema import SchemaManager

from analysis_service.database_admin import scratch_database
from analysis_service.migrate import PROCRASTINATE_VERSION, ROOT

VENDORED = ROOT / "migrations" / "procrastinate"

# What makes up procrastinate's schema, read from the catalog so two databases can be compared
# whichever way they were built (one script, or a script and migrations).
CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name LIKE 'procrastinate%'""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE conrelid::regclass::text LIKE 'procrastinate%'""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename LIKE 'procrastinate%'""",
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate%'""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'procrastinate%'""",
    "enums": """
        SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typname LIKE 'procrastinate%' GROUP BY t.typname""",
    "composite types": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relkind = 'c' AND c.relname LIKE 'procrastinate%' AND a.attnum > 0""",
}


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _migrations_after(pinned: str) -> list[str]:
    """procrastinate's migration files for versions newer than `pinned`, in the order they
    apply (named `xx.yy.zz_nn_{pre,post}_...sql`, xx.yy.zz the version that needs them)."""
    names = sorted(p.name for p in Path(SchemaManager.get_migrations_path()).glob("*.sql"))
    return [name for name in names if _version_key(name.split("_", 1)[0]) > _version_key(pinned)]


def _upgrade_instruction() -> str:
    files = ", ".join(_migrations_after(PROCRASTINATE_VERSION)) or "none"
    return (
        f"procrastinate {version('procrastinate')} is installed but the migrations build its "
        f"schema as of {PROCRASTINATE_VERSION}: add an Alembic revision applying, in order, "
        f"copies under migrations/procrastinate/ of the procrastinate/sql/migrations/ files "
        f"newer than {PROCRASTINATE_VERSION} ({files}), then set PROCRASTINATE_VERSION in "
        "analysis_service/migrate.py and the pin in pyproject.toml to the new version"
    )


def test_installed_procrastinate_is_the_version_the_migrations_build():
    assert version("procrastinate") == PROCRASTINATE_VERSION, _upgrade_instruction()


def test_pyproject_pins_the_version_the_migrations_build():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [dep for dep in project["dependencies"] if re.match(r"procrastinate\b", dep)]
    assert pins == [f"procrastinate=={PROCRASTINATE_VERSION}"]


def test_vendored_schema_is_procrastinates_own():
    """The copy revision 0001 applies is the package's schema.sql verbatim, below one header."""
    installed = version("procrastinate")
    path = VENDORED / f"schema-{installed}.sql"
    if not path.exists():
        pytest.skip(f"procrastinate {installed}'s schema is reached by revisions, not a copy")
    header, body = path.read_text(encoding="utf-8").split("\n", 1)
    assert header.startswith(f"-- procrastinate {installed}")
    assert body == SchemaManager.get_schema(), f"{path.name} is not {installed}'s schema.sql"


def _catalog(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(query).fetchall()) for name, query in CATALOG.items()}


@pytest.fixture
def fresh_queue_database(pg_admin_url: str) -> Iterator[str]:
    """A database holding nothing but the installed procrastinate's schema."""
    with scratch_database(pg_admin_url, f"subpop_queue_{uuid.uuid4().hex[:12]}") as url:
        with psycopg.connect(url) as conn:
            conn.execute(SchemaManager.get_schema())
        yield url


def test_migrations_build_the_installed_procrastinates_schema(
    database_url: str, fresh_queue_database: str
):
    migrated, expected = _catalog(database_url), _catalog(fresh_queue_database)
    assert expected["columns"], "the catalog queries found no procrastinate tables"
    differences = {
        name: {
            "only after our migrations": sorted(set(migrated[name]) - set(expected[name])),
            "only in the installed schema": sorted(set(expected[name]) - set(migrated[name])),
        }
        for name in CATALOG
        if migrated[name] != expected[name]
    }
    assert not differences, f"{_upgrade_instruction()}\n{differences}"
