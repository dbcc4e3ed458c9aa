"""storage commitment results

The storage commitments the archive requests of remote AEs, as dcm4chee's stgcmt_result:
PENDING until the N-EVENT-REPORT comes, then COMPLETED, WARNING or FAILED; purged by age
of the last update.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    postgres = op.get_bind().dialect.name == "postgresql"
    text = sa.String(collation="C") if postgres else sa.String()
    op.create_table(
        "stgcmt_result",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_uid", text, nullable=False),
        sa.Column("study_iuid", text, nullable=False),
        sa.Column("series_iuid", text, nullable=True),
        sa.Column("sop_iuid", text, nullable=True),
        sa.Column("exporter_id", text, nullable=True),
        sa.Column("local_aet", text, nullable=False),
        sa.Column("remote_aet", text, nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("message", text, nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_stgcmt_result")),
        sa.UniqueConstraint("transaction_uid", name=op.f("uq_stgcmt_result_transaction_uid")),
    )
    with op.batch_alter_table("stgcmt_result", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stgcmt_result_study_iuid"), ["study_iuid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_stgcmt_result_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_stgcmt_result_updated"), ["updated"], unique=False)


def downgrade() -> None:
    op.drop_table("stgcmt_result")
