"""Scan identity: each image version keeps the ctime and inode its file had when scanned

A later scan reuses a stored version without reading the file again only when size, mtime,
ctime and inode all still match: a user can set mtime back after changing a file, not ctime.
Versions stored before this revision have neither (null), so their files are read once more.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("image", sa.Column("ctime_ns", sa.BigInteger(), nullable=True))
    op.add_column("image", sa.Column("inode", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("image", "inode")
    op.drop_column("image", "ctime_ns")
