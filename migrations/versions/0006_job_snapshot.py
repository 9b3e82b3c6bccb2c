"""A finished job's results never change: image rows become immutable file versions

A scan that finds a file changed used to update its `image` row in place, so a later job on
the same folder changed the classes, hashes, invalid reasons and captions of every earlier job
that linked the row. Now a changed file gets a new row (a new version of its relpath) and
rows are never updated: each job keeps the versions it saw through `job_image`. The rows that
exist become the versions the earlier jobs saw, so nothing needs copying.

Assignments now reference the job's own image links (`job_image`), so a job's assignments
can only name images it saw.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("uq_image_dataset_id_relpath", "image", type_="unique")
    op.create_index("ix_image_dataset_id_relpath", "image", ["dataset_id", "relpath"])
    op.drop_constraint("fk_assignment_image_id_image", "assignment", type_="foreignkey")
    op.create_foreign_key(
        "fk_assignment_job_id_job_image",
        "assignment",
        "job_image",
        ["job_id", "image_id"],
        ["job_id", "image_id"],
        ondelete="CASCADE",
    )


# Every older version of a relpath, with the newest version that stands for it once the
# versions are folded back into one row per relpath.
_SUPERSEDED = """
    SELECT id, keep FROM (
        SELECT id, max(id) OVER (PARTITION BY dataset_id, relpath) AS keep FROM image
    ) versions WHERE id <> keep
"""


def downgrade() -> None:
    """One row per relpath again: the newest version stands for the older ones (the jobs that
    saw those keep their links and assignments, to the newest version's facts)."""
    op.drop_constraint("fk_assignment_job_id_job_image", "assignment", type_="foreignkey")
    op.execute(
        sa.text(
            f"""
            INSERT INTO job_image (job_id, image_id, caption_error)
            SELECT ji.job_id, s.keep, ji.caption_error
            FROM job_image ji JOIN ({_SUPERSEDED}) s ON s.id = ji.image_id
            ON CONFLICT DO NOTHING
            """
        )
    )
    op.execute(
        sa.text(
            f"""
            INSERT INTO assignment (job_id, image_id, dimension_id, attribute_id, note)
            SELECT a.job_id, s.keep, a.dimension_id, a.attribute_id, a.note
            FROM assignment a JOIN ({_SUPERSEDED}) s ON s.id = a.image_id
            ON CONFLICT DO NOTHING
            """
        )
    )
    op.execute(
        sa.text(f"DELETE FROM assignment WHERE image_id IN (SELECT id FROM ({_SUPERSEDED}) s)")
    )
    # Their job_image rows go with them (ON DELETE CASCADE).
    op.execute(sa.text(f"DELETE FROM image WHERE id IN (SELECT id FROM ({_SUPERSEDED}) s)"))
    op.create_foreign_key(
        "fk_assignment_image_id_image",
        "assignment",
        "image",
        ["image_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_index("ix_image_dataset_id_relpath", table_name="image")
    op.create_unique_constraint("uq_image_dataset_id_relpath", "image", ["dataset_id", "relpath"])
