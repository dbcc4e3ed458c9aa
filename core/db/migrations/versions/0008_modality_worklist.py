"""modality worklist

MWL items as dcm4chee keeps them (mwl_item: a requested procedure with its scheduled
procedure step, of a patient; unique by Study Instance UID and SPS ID), their scheduled
station AE titles (mwl_station_aet, several per item), and the ID generators' last values
(id_sequence: accession number, requested procedure ID, SPS ID).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    text = sa.String(collation="C") if postgres else sa.String()
    pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "mwl_item",
        sa.Column("pk", pk, nullable=False),
        sa.Column("patient_fk", pk, nullable=False),
        sa.Column("accession_number", text, nullable=True),
        sa.Column("requested_procedure_id", text, nullable=True),
        sa.Column("requested_procedure_description", text, nullable=True),
        sa.Column("study_iuid", text, nullable=False),
        sa.Column("sps_id", text, nullable=False),
        sa.Column("modality", text, nullable=True),
        sa.Column("sps_start_date", text, nullable=True),
        sa.Column("sps_start_time", text, nullable=True),
        sa.Column("performing_physician", text, nullable=True),
        sa.Column("performing_physician_upper", text, nullable=True),
        sa.Column("sps_status", text, nullable=False),
        sa.Column("sps_description", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_fk"], ["patient.pk"], name=op.f("fk_mwl_item_patient_fk_patient")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_mwl_item")),
    )
    with op.batch_alter_table("mwl_item", schema=None) as batch_op:
        batch_op.create_index(
            "uq_mwl_item_study_iuid_sps_id", ["study_iuid", "sps_id"], unique=True
        )
        batch_op.create_index(
            "ix_mwl_item_sps_start", ["sps_start_date", "sps_start_time", "modality"]
        )
        batch_op.create_index(
            "ix_mwl_item_modality_sps_start", ["modality", "sps_start_date", "sps_start_time"]
        )
        batch_op.create_index("ix_mwl_item_sps_status", ["sps_status"])
        batch_op.create_index("ix_mwl_item_patient_fk", ["patient_fk"])
        batch_op.create_index("ix_mwl_item_accession_number", ["accession_number"])
        batch_op.create_index("ix_mwl_item_requested_procedure_id", ["requested_procedure_id"])
    op.create_table(
        "mwl_station_aet",
        sa.Column("mwl_item_fk", pk, nullable=False),
        sa.Column("station_aet", text, nullable=False),
        sa.ForeignKeyConstraint(
            ["mwl_item_fk"],
            ["mwl_item.pk"],
            name=op.f("fk_mwl_station_aet_mwl_item_fk_mwl_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mwl_item_fk", "station_aet", name=op.f("pk_mwl_station_aet")),
    )
    with op.batch_alter_table("mwl_station_aet", schema=None) as batch_op:
        batch_op.create_index("ix_mwl_station_aet_station_aet", ["station_aet", "mwl_item_fk"])
    op.create_table(
        "id_sequence",
        sa.Column("name", text, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_id_sequence")),
    )


def downgrade() -> None:
    op.drop_table("id_sequence")
    op.drop_table("mwl_station_aet")
    op.drop_table("mwl_item")
