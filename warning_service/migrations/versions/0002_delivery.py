"""delivery: the dispatcher's queue index; delivery receipts on attempts.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

import warning_service.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_queue", [sa.text("priority DESC"), "id"], unique=False,
                              sqlite_where=sa.text("status = 'queued'"),
                              postgresql_where=sa.text("status = 'queued'"))
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("receipt_error_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("receipt_at", warning_service.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_delivery_attempt_provider_id", ["provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_attempt_provider_id")
        batch_op.drop_column("receipt_at")
        batch_op.drop_column("receipt_error_code")
        batch_op.drop_column("receipt_status")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_queue")
