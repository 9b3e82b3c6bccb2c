"""llm_call.stage becomes llm_call.step, in the steps' one vocabulary

"Stage" names the job's stages (scan, caption, discover, summarize); the LLM's calls inside
discovery belong to steps: dimensions, attributes, refinement, assignment.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Earlier rows named two steps by a shorter word.
_RENAMED = {"refine": "refinement", "assign": "assignment"}


_RENAME_STEP = sa.text("UPDATE llm_call SET step = :new WHERE step = :old")


def upgrade() -> None:
    op.alter_column("llm_call", "stage", new_column_name="step")
    for old, new in _RENAMED.items():
        op.execute(_RENAME_STEP.bindparams(old=old, new=new))


def downgrade() -> None:
    for old, new in _RENAMED.items():
        op.execute(_RENAME_STEP.bindparams(old=new, new=old))
    op.alter_column("llm_call", "step", new_column_name="stage")
