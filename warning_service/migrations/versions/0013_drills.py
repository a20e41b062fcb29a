"""drills: 演练 and 号码核验 runs, issued once by the worker when due.

Revision ID: 0012_drills
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

from warning_service.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drill",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region_code", sa.String(length=32), sa.ForeignKey("region.code"), nullable=False),
        sa.Column("hazard", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.Column("due_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("answer_minutes", sa.Integer(), nullable=False),
        sa.Column("notice_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("notice_warning_id", sa.Integer(), sa.ForeignKey("early_warning.id"), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("warning_id", sa.Integer(), sa.ForeignKey("early_warning.id"), nullable=True),
        sa.Column("scope_code", sa.String(length=32), nullable=False),
        sa.Column("scope_path", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=100), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drill_region_code", "drill", ["region_code"])
    op.create_index("ix_drill_warning_id", "drill", ["warning_id"])
    op.create_index("ix_drill_due", "drill", ["due_at"], sqlite_where=sa.text("state = 'scheduled'"),
                    postgresql_where=sa.text("state = 'scheduled'"))


def downgrade() -> None:
    op.drop_index("ix_drill_due", table_name="drill")
    op.drop_index("ix_drill_warning_id", table_name="drill")
    op.drop_index("ix_drill_region_code", table_name="drill")
    op.drop_table("drill")
