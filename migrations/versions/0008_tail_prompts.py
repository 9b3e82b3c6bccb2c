"""Tail prompts: prompts an LLM wrote for generating more images of rare subpopulations

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tail_prompt",
        sa.Column("attribute_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["attribute_id"],
            ["attribute.id"],
            name="fk_tail_prompt_attribute_id_attribute",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name="fk_tail_prompt_job_id_job", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("attribute_id", name="pk_tail_prompt"),
    )
    op.create_index("ix_tail_prompt_job_id", "tail_prompt", ["job_id"])


def downgrade() -> None:
    op.drop_table("tail_prompt")
