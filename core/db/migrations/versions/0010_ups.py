"""ups work items and subscriptions

Unified Procedure Step work items (dcm4chee's ups) with the columns UPS C-FIND and the
console match on and the attributes as DICOM JSON; the subscriber AEs of each work item,
with deletion lock; global subscriptions, filtered by matching keys or not.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    postgres = op.get_bind().dialect.name == "postgresql"
    text = sa.String(collation="C") if postgres else sa.String()
    pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "ups",
        sa.Column("pk", pk, nullable=False),
        sa.Column("ups_iuid", text, nullable=False),
        sa.Column("patient_fk", pk, nullable=True),
        sa.Column("state", text, nullable=False),
        sa.Column("transaction_uid", text, nullable=True),
        sa.Column("performer_aet", text, nullable=True),
        sa.Column("start_date_time", text, nullable=True),
        sa.Column("expected_end_date_time", text, nullable=True),
        sa.Column("expiration_date_time", text, nullable=True),
        sa.Column("priority", text, nullable=True),
        sa.Column("label", text, nullable=True),
        sa.Column("worklist_label", text, nullable=True),
        sa.Column("input_readiness_state", text, nullable=True),
        sa.Column("workitem_code", text, nullable=True),
        sa.Column("workitem_scheme", text, nullable=True),
        sa.Column("workitem_meaning", text, nullable=True),
        sa.Column("station_name", text, nullable=True),
        sa.Column("study_iuid", text, nullable=True),
        sa.Column("accession_number", text, nullable=True),
        sa.Column("admission_id", text, nullable=True),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_fk"], ["patient.pk"], name=op.f("fk_ups_patient_fk_patient")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ups")),
        sa.UniqueConstraint("ups_iuid", name=op.f("uq_ups_ups_iuid")),
    )
    with op.batch_alter_table("ups", schema=None) as batch_op:
        for column in (
            "patient_fk",
            "state",
            "start_date_time",
            "priority",
            "worklist_label",
            "workitem_code",
            "station_name",
            "study_iuid",
            "updated",
        ):
            batch_op.create_index(batch_op.f(f"ix_ups_{column}"), [column], unique=False)
    op.create_table(
        "ups_subscription",
        sa.Column("pk", pk, nullable=False),
        sa.Column("ups_fk", pk, nullable=False),
        sa.Column("subscriber_aet", text, nullable=False),
        sa.Column("deletion_lock", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ups_fk"],
            ["ups.pk"],
            name=op.f("fk_ups_subscription_ups_fk_ups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ups_subscription")),
        sa.UniqueConstraint(
            "ups_fk", "subscriber_aet", name=op.f("uq_ups_subscription_ups_fk_subscriber_aet")
        ),
    )
    with op.batch_alter_table("ups_subscription", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ups_subscription_subscriber_aet"), ["subscriber_aet"], unique=False
        )
    op.create_table(
        "ups_global_subscription",
        sa.Column("pk", pk, nullable=False),
        sa.Column("subscriber_aet", text, nullable=False),
        sa.Column("deletion_lock", sa.Boolean(), nullable=False),
        sa.Column("matching_keys", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ups_global_subscription")),
        sa.UniqueConstraint(
            "subscriber_aet", name=op.f("uq_ups_global_subscription_subscriber_aet")
        ),
    )


def downgrade() -> None:
    op.drop_table("ups_global_subscription")
    op.drop_table("ups_subscription")
    op.drop_table("ups")
