"""Link references checked per statement: job_image's references to job and image are checked
by one trigger per statement instead of a foreign key check per row

A re-scan of an unchanged folder links every file to the new job: 40,000 link rows, each
checked by two foreign key triggers, a query per row and key (half of Postgres' time in the
re-scan). The two foreign keys become statement-level triggers that keep what they ensured:

- every statement that inserts links checks that each job and image they reference exists,
  and locks it FOR KEY SHARE until the transaction ends, as a foreign key check does: a
  deletion of it waits for the transaction, and one committed first fails the statement
  (READ COMMITTED, as every transaction of the service runs);
- deleting jobs or images deletes their links (ON DELETE CASCADE);
- a link's keys, a job's id and an image's id are never changed (refused).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CHECK_REFERENCES = """
CREATE FUNCTION job_image_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    jobs uuid[];
    images bigint[];
    locked bigint;
BEGIN
    jobs := ARRAY(SELECT DISTINCT job_id FROM written);
    PERFORM FROM job WHERE id = ANY (jobs) FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(jobs) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'a job_image row references a job that does not exist',
            TABLE = 'job_image';
    END IF;
    images := ARRAY(SELECT DISTINCT image_id FROM written);
    PERFORM FROM image WHERE id = ANY (images) FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(images) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'a job_image row references an image that does not exist',
            TABLE = 'job_image';
    END IF;
    RETURN NULL;
END $$
"""

DELETE_LINKS = """
CREATE FUNCTION job_image_delete_links_of_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_image l USING deleted d WHERE l.{column} = d.id;
    RETURN NULL;
END $$
"""

REFUSE_KEY_CHANGE = """
CREATE FUNCTION refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING
        MESSAGE = format('the key of a %s row never changes: job_image rows reference it',
                         TG_TABLE_NAME);
END $$
"""

#: (table, its key columns links reference or hold) whose keys are never changed.
_KEYS = (("job", "id"), ("image", "id"), ("job_image", "job_id, image_id"))


def _changed(columns: str) -> str:
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns.split(", "))


def upgrade() -> None:
    op.drop_constraint("fk_job_image_job_id_job", "job_image", type_="foreignkey")
    op.drop_constraint("fk_job_image_image_id_image", "job_image", type_="foreignkey")
    op.execute(CHECK_REFERENCES)
    op.execute(
        "CREATE TRIGGER job_image_check_references AFTER INSERT ON job_image "
        "REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
        "EXECUTE FUNCTION job_image_check_references()"
    )
    for table, column in (("job", "job_id"), ("image", "image_id")):
        op.execute(DELETE_LINKS.format(table=table, column=column))
        op.execute(
            f"CREATE TRIGGER job_image_delete_links AFTER DELETE ON {table} "
            "REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT "
            f"EXECUTE FUNCTION job_image_delete_links_of_{table}()"
        )
    op.execute(REFUSE_KEY_CHANGE)
    for table, columns in _KEYS:
        op.execute(
            f"CREATE TRIGGER refuse_key_change BEFORE UPDATE OF {columns} ON {table} "
            f"FOR EACH ROW WHEN ({_changed(columns)}) EXECUTE FUNCTION refuse_key_change()"
        )


def downgrade() -> None:
    for table, _ in _KEYS:
        op.execute(f"DROP TRIGGER refuse_key_change ON {table}")
    op.execute("DROP FUNCTION refuse_key_change()")
    for table in ("job", "image"):
        op.execute(f"DROP TRIGGER job_image_delete_links ON {table}")
        op.execute(f"DROP FUNCTION job_image_delete_links_of_{table}()")
    op.execute("DROP TRIGGER job_image_check_references ON job_image")
    op.execute("DROP FUNCTION job_image_check_references()")
    op.create_foreign_key(
        "fk_job_image_image_id_image",
        "job_image",
        "image",
        ["image_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_job_image_job_id_job", "job_image", "job", ["job_id"], ["id"], ondelete="CASCADE"
    )
