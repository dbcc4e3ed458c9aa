"""edits, merges, expiration, access control

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 03:21:09.143062
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    postgres = op.get_bind().dialect.name == "postgresql"
    text = sa.String(collation="C") if postgres else sa.String()
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "merged_into_fk",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("edited", sa.DateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_patient_merged_into_fk"), ["merged_into_fk"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_patient_merged_into_fk_patient"), "patient", ["merged_into_fk"], ["pk"]
        )

    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edited", sa.DateTime(), nullable=True))

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expiration_date", text, nullable=True))
        batch_op.add_column(sa.Column("access_control_id", text, nullable=True))
        batch_op.add_column(sa.Column("edited", sa.DateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_study_expiration_date"), ["expiration_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_expiration_date"))
        batch_op.drop_column("edited")
        batch_op.drop_column("access_control_id")
        batch_op.drop_column("expiration_date")

    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("edited")

    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_patient_merged_into_fk_patient"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_patient_merged_into_fk"))
        batch_op.drop_column("edited")
        batch_op.drop_column("merged_into_fk")
