"""审核签发: who submitted a warning held for sign-off, and which leader approved or rejected it.

Revision ID: 0012_signoff
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

import warning_service.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "warning_signoff",
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=False),
        sa.Column("submitter", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decider", sa.String(length=64), nullable=True),
        sa.Column("decided_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["warning_id"], ["early_warning.id"]),
        sa.ForeignKeyConstraint(["submitted_by"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("warning_id"),
    )


def downgrade() -> None:
    op.drop_table("warning_signoff")
