"""delivery engine: live dispatch workers and which worker holds each message being sent.

A worker registers a row and renews its heartbeat every second; each outbox row it claims names it in
`claimed_by`. A worker that stops beating (kill -9, lost host) is known gone within seconds, so its rows go
back to the queue at once instead of after a long lease.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

import warning_service.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch_worker",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=48), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("dispatch_worker")
