"""escalation_digest: one escalation message per recipient and sweep; notice and outbox point at it.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from warning_service.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation_digest",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("warning_id", sa.Integer(), sa.ForeignKey("early_warning.id"), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("reply_code", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_escalation_digest_warning_id", "escalation_digest", ["warning_id"])
    op.create_index("ix_escalation_digest_person_id", "escalation_digest", ["person_id"])
    with op.batch_alter_table("notice") as batch:
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_notice_digest_id", "escalation_digest", ["digest_id"], ["id"])
        batch.create_index("ix_notice_digest_id", ["digest_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("digest_id")
    with op.batch_alter_table("notice") as batch:
        batch.drop_index("ix_notice_digest_id")
        batch.drop_constraint("fk_notice_digest_id", type_="foreignkey")
        batch.drop_column("digest_id")
    op.drop_index("ix_escalation_digest_person_id", table_name="escalation_digest")
    op.drop_index("ix_escalation_digest_warning_id", table_name="escalation_digest")
    op.drop_table("escalation_digest")
