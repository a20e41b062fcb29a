"""exports: background export jobs (issue 17).

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

from warning_service.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("scope_code", sa.String(length=20), nullable=False),
        sa.Column("region_code", sa.String(length=20), nullable=False),
        sa.Column("warning_id", sa.Integer(), sa.ForeignKey("early_warning.id"), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("rows", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_export_job_state_id", "export_job", ["state", "id"])
    op.create_index("ix_export_job_user_created", "export_job", ["user_id", "created_at"])
    op.create_index("ix_export_job_expires_at", "export_job", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_export_job_expires_at", table_name="export_job")
    op.drop_index("ix_export_job_user_created", table_name="export_job")
    op.drop_index("ix_export_job_state_id", table_name="export_job")
    op.drop_table("export_job")
