"""modality performed procedure steps

The MPPS received by N-CREATE and updated by N-SET (dcm4chee's mpps table): unique by SOP
Instance UID, with the columns the console lists and searches, and the whole data set as
DICOM JSON. The list, newest start first, seeks on (start_date, start_time, pk).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    postgres = op.get_bind().dialect.name == "postgresql"
    text = sa.String(collation="C") if postgres else sa.String()
    required = (
        "pps_id",
        "status",
        "start_date",
        "start_time",
        "end_date",
        "end_time",
        "study_iuid",
        "accession_number",
        "station_aet",
        "station_name",
        "modality",
        "patient_id",
        "patient_name",
        "calling_aet",
        "called_aet",
    )
    op.create_table(
        "mpps",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sop_iuid", text, nullable=False),
        *(sa.Column(name, text, nullable=False) for name in required),
        sa.Column("reason_code", text, nullable=True),
        sa.Column("reason_scheme", text, nullable=True),
        sa.Column("reason_meaning", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_mpps")),
        sa.UniqueConstraint("sop_iuid", name=op.f("uq_mpps_sop_iuid")),
    )
    with op.batch_alter_table("mpps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mpps_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_mpps_study_iuid"), ["study_iuid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mpps_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index("ix_mpps_start", ["start_date", "start_time", "pk"], unique=False)


def downgrade() -> None:
    op.drop_table("mpps")
