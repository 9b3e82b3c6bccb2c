"""API keys, explorer sessions, and the key that submitted each job

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("daily_tokens", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_index(
        "uq_api_key_active_name",
        "api_key",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "ui_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_name", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ui_session")),
    )
    op.create_index(op.f("ix_ui_session_key_hash"), "ui_session", ["key_hash"], unique=False)
    op.create_index(op.f("ix_ui_session_expires_at"), "ui_session", ["expires_at"], unique=False)
    op.add_column("job", sa.Column("api_key_name", sa.Text(), nullable=True))
    op.create_index(op.f("ix_job_api_key_name"), "job", ["api_key_name"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_api_key_name"), table_name="job")
    op.drop_column("job", "api_key_name")
    op.drop_index(op.f("ix_ui_session_expires_at"), table_name="ui_session")
    op.drop_index(op.f("ix_ui_session_key_hash"), table_name="ui_session")
    op.drop_table("ui_session")
    op.drop_index("uq_api_key_active_name", table_name="api_key")
    op.drop_table("api_key")
