"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 01:41:20.896428
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    postgres = op.get_bind().dialect.name == "postgresql"
    text = sa.String(collation="C") if postgres else sa.String()
    op.create_table(
        "patient",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", text, nullable=True),
        sa.Column("issuer", text, nullable=True),
        sa.Column("patient_name", text, nullable=True),
        sa.Column("patient_name_upper", text, nullable=True),
        sa.Column("birth_date", text, nullable=True),
        sa.Column("sex", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_patient")),
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(
            "ix_patient_patient_id_issuer", ["patient_id", "issuer"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_patient_patient_name_upper"), ["patient_name_upper"], unique=False
        )

    op.create_table(
        "study",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "patient_fk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("study_iuid", text, nullable=False),
        sa.Column("study_date", text, nullable=True),
        sa.Column("study_time", text, nullable=True),
        sa.Column("accession_number", text, nullable=True),
        sa.Column("study_id", text, nullable=True),
        sa.Column("study_description", text, nullable=True),
        sa.Column("referring_physician", text, nullable=True),
        sa.Column("referring_physician_upper", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_fk"], ["patient.pk"], name=op.f("fk_study_patient_fk_patient")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_study")),
        sa.UniqueConstraint("study_iuid", name=op.f("uq_study_study_iuid")),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_study_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_study_created"), ["created"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_patient_fk"), ["patient_fk"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_study_date"), ["study_date"], unique=False)

    op.create_table(
        "series",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("study_fk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("series_iuid", text, nullable=False),
        sa.Column("modality", text, nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", text, nullable=True),
        sa.Column("body_part", text, nullable=True),
        sa.Column("institution", text, nullable=True),
        sa.Column("station_name", text, nullable=True),
        sa.Column("source_aet", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_fk"], ["study.pk"], name=op.f("fk_series_study_fk_study")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_series")),
        sa.UniqueConstraint("series_iuid", name=op.f("uq_series_series_iuid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_series_study_fk"), ["study_fk"], unique=False)

    op.create_table(
        "instance",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "series_fk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("sop_iuid", text, nullable=False),
        sa.Column("sop_cuid", text, nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("content_date", text, nullable=True),
        sa.Column("content_time", text, nullable=True),
        sa.Column("rejection_code", text, nullable=True),
        sa.Column("source_aet", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_fk"], ["series.pk"], name=op.f("fk_instance_series_fk_series")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_instance")),
        sa.UniqueConstraint("sop_iuid", name=op.f("uq_instance_sop_iuid")),
    )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_instance_rejected",
            ["rejection_code"],
            unique=False,
            sqlite_where=sa.text("rejection_code IS NOT NULL"),
            postgresql_where=sa.text("rejection_code IS NOT NULL"),
        )
        batch_op.create_index(batch_op.f("ix_instance_series_fk"), ["series_fk"], unique=False)
        batch_op.create_index(batch_op.f("ix_instance_sop_cuid"), ["sop_cuid"], unique=False)

    op.create_table(
        "location",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "instance_fk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("storage_id", text, nullable=False),
        sa.Column("storage_path", text, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", text, nullable=False),
        sa.Column("transfer_syntax_uid", text, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_fk"], ["instance.pk"], name=op.f("fk_location_instance_fk_instance")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_location")),
    )
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_location_instance_fk"), ["instance_fk"], unique=False)
        batch_op.create_index(batch_op.f("ix_location_status"), ["status"], unique=False)
        batch_op.create_index(
            "ix_location_storage_id_storage_path", ["storage_id", "storage_path"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.drop_index("ix_location_storage_id_storage_path")
        batch_op.drop_index(batch_op.f("ix_location_status"))
        batch_op.drop_index(batch_op.f("ix_location_instance_fk"))

    op.drop_table("location")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_sop_cuid"))
        batch_op.drop_index(batch_op.f("ix_instance_series_fk"))
        batch_op.drop_index(
            "ix_instance_rejected",
            sqlite_where=sa.text("rejection_code IS NOT NULL"),
            postgresql_where=sa.text("rejection_code IS NOT NULL"),
        )

    op.drop_table("instance")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_fk"))
        batch_op.drop_index(batch_op.f("ix_series_modality"))

    op.drop_table("series")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_study_date"))
        batch_op.drop_index(batch_op.f("ix_study_patient_fk"))
        batch_op.drop_index(batch_op.f("ix_study_created"))
        batch_op.drop_index(batch_op.f("ix_study_accession_number"))

    op.drop_table("study")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_patient_name_upper"))
        batch_op.drop_index("ix_patient_patient_id_issuer")

    op.drop_table("patient")
