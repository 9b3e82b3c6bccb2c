"""A dataset's images by class: an index on image (dataset_id, class_name, id)

Discovery reads one class of a job at a time (its sample of captions, then its images without
assignments, a page after an image id). With nothing to find a class's images by, each of
those reads scanned every image of every dataset: about 26 ms a read at 200,000 images, a
few reads per class, and a 1,000-class job read the image table thousands of times over. The
index walks one class of the job's dataset in id order and stops at the page's end.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_image_dataset_id_class_name_id", "image", ["dataset_id", "class_name", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_image_dataset_id_class_name_id", table_name="image")
