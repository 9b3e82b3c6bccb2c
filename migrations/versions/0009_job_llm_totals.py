"""A job's LLM spending kept as running totals on the job, so its view never sums its calls

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TOTALS = ("llm_calls", "llm_prompt_tokens", "llm_completion_tokens")


def upgrade() -> None:
    op.add_column("job", sa.Column("llm_calls", sa.Integer(), server_default="0", nullable=False))
    for name in TOTALS[1:]:
        op.add_column("job", sa.Column(name, sa.BigInteger(), server_default="0", nullable=False))
    # Jobs from before keep what their call log says they spent.
    op.execute(
        """
        UPDATE job SET llm_calls = spent.calls,
                       llm_prompt_tokens = spent.prompt,
                       llm_completion_tokens = spent.completion
        FROM (SELECT job_id, count(*) AS calls,
                     coalesce(sum(prompt_tokens), 0) AS prompt,
                     coalesce(sum(completion_tokens), 0) AS completion
              FROM llm_call WHERE job_id IS NOT NULL GROUP BY job_id) AS spent
        WHERE job.id = spent.job_id
        """
    )


def downgrade() -> None:
    for name in TOTALS:
        op.drop_column("job", name)
