"""keyset paging indexes

The Studies tab pages studies newest first on the sort key (StudyDate, StudyTime, both
descending with no value last, then arrival): an index on exactly that key lets a page,
the page after or before one (a seek on the key) and the last page (read backwards) walk
the index alone. The index of rejected instances also holds their series, so that the
views find the few series and studies with a rejected instance in it alone
(core.db.views).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 13:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REJECTED = sa.text("rejection_code IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(
            "ix_study_newest",
            [
                sa.text("coalesce(study_date, '') DESC"),
                sa.text("coalesce(study_time, '') DESC"),
                "pk",
            ],
            unique=False,
        )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_instance_rejected", sqlite_where=REJECTED, postgresql_where=REJECTED
        )
        batch_op.create_index(
            "ix_instance_rejected",
            ["rejection_code", "series_fk"],
            unique=False,
            sqlite_where=REJECTED,
            postgresql_where=REJECTED,
        )


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_instance_rejected", sqlite_where=REJECTED, postgresql_where=REJECTED
        )
        batch_op.create_index(
            "ix_instance_rejected",
            ["rejection_code"],
            unique=False,
            sqlite_where=REJECTED,
            postgresql_where=REJECTED,
        )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index("ix_study_newest")
