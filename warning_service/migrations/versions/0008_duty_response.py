"""duty roster and emergency response: shifts and their seats; responses, their changes, warnings and 到岗
demands; one duty-room heads-up per warning and person.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

import warning_service.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

T = warning_service.db.UTCDateTime(timezone=True)
WATCH = sa.text("reason = 'duty_watch'")
ACTIVE = sa.text("state = 'active'")


def upgrade() -> None:
    op.create_table(
        "duty_shift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("starts_at", T, nullable=False),
        sa.Column("ends_at", T, nullable=False),
        sa.Column("room_phone", sa.String(length=20), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", T, nullable=False),
        sa.Column("updated_at", T, nullable=False),
        sa.ForeignKeyConstraint(["region_code"], ["region.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_duty_shift_region_time", "duty_shift", ["region_code", "starts_at", "ends_at"])
    op.create_table(
        "duty_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shift_id", sa.Integer(), nullable=False),
        sa.Column("seat", sa.String(length=12), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["shift_id"], ["duty_shift.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shift_id", "person_id", name="uq_duty_member_person"),
    )
    op.create_index("ix_duty_member_shift_id", "duty_member", ["shift_id"])
    op.create_index("ix_duty_member_person_id", "duty_member", ["person_id"])
    op.create_table(
        "emergency_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("hazard", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=4), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("started_at", T, nullable=False),
        sa.Column("ended_at", T, nullable=True),
        sa.Column("updated_at", T, nullable=False),
        sa.ForeignKeyConstraint(["region_code"], ["region.code"]),
        sa.ForeignKeyConstraint(["warning_id"], ["early_warning.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_emergency_response_region_code", "emergency_response", ["region_code"])
    op.create_index("ix_emergency_response_warning_id", "emergency_response", ["warning_id"])
    op.create_index("uq_response_active", "emergency_response", ["region_code", "hazard"], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_table(
        "response_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("at", T, nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("from_level", sa.String(length=4), nullable=True),
        sa.Column("to_level", sa.String(length=4), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("demands", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["response_id"], ["emergency_response.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_response_change_response_id", "response_change", ["response_id"])
    op.create_table(
        "response_warning",
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", T, nullable=False),
        sa.ForeignKeyConstraint(["response_id"], ["emergency_response.id"]),
        sa.ForeignKeyConstraint(["warning_id"], ["early_warning.id"]),
        sa.PrimaryKeyConstraint("response_id", "warning_id"),
    )
    op.create_index("ix_response_warning_warning_id", "response_warning", ["warning_id"])
    op.create_table(
        "response_demand",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=4), nullable=False),
        sa.Column("created_at", T, nullable=False),
        sa.ForeignKeyConstraint(["response_id"], ["emergency_response.id"]),
        sa.ForeignKeyConstraint(["notice_id"], ["notice.id"]),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notice_id"),
        sa.UniqueConstraint("response_id", "person_id", name="uq_response_demand_person"),
    )
    op.create_index("ix_response_demand_response_id", "response_demand", ["response_id"])
    op.create_index("uq_notice_duty_watch", "notice", ["warning_id", "person_id"], unique=True,
                    sqlite_where=WATCH, postgresql_where=WATCH)


def downgrade() -> None:
    op.drop_index("uq_notice_duty_watch", table_name="notice", sqlite_where=WATCH, postgresql_where=WATCH)
    op.drop_table("response_demand")
    op.drop_table("response_warning")
    op.drop_table("response_change")
    op.drop_index("uq_response_active", table_name="emergency_response", sqlite_where=ACTIVE,
                  postgresql_where=ACTIVE)
    op.drop_table("emergency_response")
    op.drop_table("duty_member")
    op.drop_table("duty_shift")
