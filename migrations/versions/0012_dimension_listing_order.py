"""Dimension listing order: an index on (job_id, class_name, position)

A page of a job's subpopulations walks the job's dimensions in this index's order and stops
at the page's end, where filtering attributes by job read and sorted all of them on every
page (15,000 on a 1000-class job).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_dimension_job_id_class_name_position", "dimension", ["job_id", "class_name", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_dimension_job_id_class_name_position", table_name="dimension")
