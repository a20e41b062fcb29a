"""security (issue 11): replay records for signed Twilio callbacks; per-user token version for logout.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from warning_service.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_event",
        sa.Column("sid", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid"),
    )
    # Plain ALTERs (SQLite >= 3.35 drops columns natively): a batch copy of app_user would trip the foreign keys
    # other tables hold on it.
    op.add_column("app_user", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("app_user", "token_version")
    op.drop_table("inbound_event")
