"""应急广播: loudspeaker terminals per village, and each terminal's play receipts.

Revision ID: 0012_broadcast
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

import warning_service.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcast_terminal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("village_code", sa.String(length=32), nullable=False),
        sa.Column("town_code", sa.String(length=32), nullable=True),
        sa.Column("platform_id", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["region_code"], ["region.code"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("platform_id"),
    )
    op.create_index("ix_broadcast_terminal_region_code", "broadcast_terminal", ["region_code"])
    op.create_index("ix_broadcast_terminal_village_code", "broadcast_terminal", ["village_code"])
    op.create_index("ix_broadcast_terminal_town_code", "broadcast_terminal", ["town_code"])
    op.create_table(
        "broadcast_play",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("village_code", sa.String(length=32), nullable=False),
        sa.Column("terminal_ref", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("started_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id", "terminal_ref", name="uq_broadcast_play_outbox_terminal"),
    )
    op.create_index("ix_broadcast_play_warning", "broadcast_play", ["warning_id", "village_code"])
    op.create_table(
        "broadcast_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.String(length=120), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("terminal_ref", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=12), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("reported_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("receipt_id"),
    )
    op.create_index("ix_broadcast_receipt_outbox_id", "broadcast_receipt", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_broadcast_receipt_outbox_id", table_name="broadcast_receipt")
    op.drop_table("broadcast_receipt")
    op.drop_index("ix_broadcast_play_warning", table_name="broadcast_play")
    op.drop_table("broadcast_play")
    op.drop_index("ix_broadcast_terminal_town_code", table_name="broadcast_terminal")
    op.drop_index("ix_broadcast_terminal_village_code", table_name="broadcast_terminal")
    op.drop_index("ix_broadcast_terminal_region_code", table_name="broadcast_terminal")
    op.drop_table("broadcast_terminal")
