"""Assignment references checked twice per row, not four times

Every assignment row was checked by four foreign keys (its job, its job's image, its
dimension, its attribute), each a query per row: most of the time of a class's insert of
assignments (about 18 ms for 350 rows, 14 ms with two). Two of them said nothing the other
two do not:

- the job: the job's image (job_image, which references the job) exists only while its job
  does, and goes with it;
- the dimension: the attribute is now referenced with its dimension, (attribute_id,
  dimension_id), so an assignment's attribute must also be of its dimension (before, nothing
  said so), and a dimension's attributes go with it.

Deleting a job, an image's link, a dimension or an attribute still deletes the assignments
under it (ON DELETE CASCADE, through the references that are left).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint("uq_attribute_id_dimension_id", "attribute", ["id", "dimension_id"])
    op.drop_constraint("fk_assignment_job_id_job", "assignment", type_="foreignkey")
    op.drop_constraint("fk_assignment_dimension_id_dimension", "assignment", type_="foreignkey")
    op.drop_constraint("fk_assignment_attribute_id_attribute", "assignment", type_="foreignkey")
    op.create_foreign_key(
        "fk_assignment_attribute_id_attribute",
        "assignment",
        "attribute",
        ["attribute_id", "dimension_id"],
        ["id", "dimension_id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint("fk_assignment_attribute_id_attribute", "assignment", type_="foreignkey")
    op.create_foreign_key(
        "fk_assignment_attribute_id_attribute",
        "assignment",
        "attribute",
        ["attribute_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_assignment_dimension_id_dimension",
        "assignment",
        "dimension",
        ["dimension_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_assignment_job_id_job", "assignment", "job", ["job_id"], ["id"], ondelete="CASCADE"
    )
    op.drop_constraint("uq_attribute_id_dimension_id", "attribute", type_="unique")
