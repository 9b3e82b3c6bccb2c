"""Prediction sets: a model's predictions on a finished job's images, for slices and exports

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_set",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name="fk_prediction_set_job_id_job", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_set"),
        sa.UniqueConstraint("job_id", "name", name="uq_prediction_set_job_id_name"),
    )
    op.create_index("ix_prediction_set_job_id", "prediction_set", ["job_id"])
    op.create_table(
        "prediction",
        sa.Column("set_id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("prediction", sa.Text(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("split", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["set_id"],
            ["prediction_set.id"],
            name="fk_prediction_set_id_prediction_set",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id", "image_id"],
            ["job_image.job_id", "job_image.image_id"],
            name="fk_prediction_job_id_job_image",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("set_id", "image_id", name="pk_prediction"),
    )
    op.create_index("ix_prediction_job_id_image_id", "prediction", ["job_id", "image_id"])


def downgrade() -> None:
    op.drop_table("prediction")
    op.drop_table("prediction_set")
