"""console paging indexes

The Studies tab pages studies newest first (StudyDate, StudyTime descending): one index on
both columns gives the rows in that order, so a page walks the index instead of sorting
the matches (it replaces the index on study_date alone, which it serves as well).
Every query checks that a study or series has an instance the view shows
(rejection_code IS NULL in the regular view): with rejection_code beside series_fk in the
instance index, that check reads the index alone (it replaces the index on series_fk).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 02:30:00.000000
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(
            "ix_study_study_date_study_time", ["study_date", "study_time"], unique=False
        )
        batch_op.drop_index("ix_study_study_date")

    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_instance_series_fk_rejection_code", ["series_fk", "rejection_code"], unique=False
        )
        batch_op.drop_index("ix_instance_series_fk")


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index("ix_instance_series_fk", ["series_fk"], unique=False)
        batch_op.drop_index("ix_instance_series_fk_rejection_code")

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index("ix_study_study_date", ["study_date"], unique=False)
        batch_op.drop_index("ix_study_study_date_study_time")
