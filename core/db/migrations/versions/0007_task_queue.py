"""task queue

One table of tasks for every queue (dcm4chee's task table): the next due task of a queue
is found on (queue, status, scheduled_time), which also counts a queue's tasks per status;
a page of a queue's tasks newest first walks (queue, pk) or (queue, status, pk).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Byte-order collation on PostgreSQL, as SQLite compares (see core.db.models).
    text = sa.String(collation="C") if postgres else sa.String()
    op.create_table(
        "task",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("queue", text, nullable=False),
        sa.Column("type", text, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("device", text, nullable=False),
        sa.Column("batch_id", text, nullable=True),
        sa.Column("study_iuid", text, nullable=True),
        sa.Column("local_aet", text, nullable=True),
        sa.Column("remote_aet", text, nullable=True),
        sa.Column("created_time", sa.DateTime(), nullable=False),
        sa.Column("updated_time", sa.DateTime(), nullable=False),
        sa.Column("scheduled_time", sa.DateTime(), nullable=False),
        sa.Column("started_time", sa.DateTime(), nullable=True),
        sa.Column("ended_time", sa.DateTime(), nullable=True),
        sa.Column("num_failures", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("outcome_message", sa.Text(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("claimed_by", text, nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_task")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index(
            "ix_task_queue_status_scheduled_time", ["queue", "status", "scheduled_time"]
        )
        batch_op.create_index("ix_task_queue_pk", ["queue", "pk"])
        batch_op.create_index("ix_task_queue_status_pk", ["queue", "status", "pk"])
        batch_op.create_index("ix_task_batch_id", ["batch_id"])
        batch_op.create_index("ix_task_study_iuid", ["study_iuid"])


def downgrade() -> None:
    op.drop_table("task")
