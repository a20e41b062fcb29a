"""person: 职务 (title), 单位 (unit) and 备用电话 (backup phone) from the county rosters.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTERs on both databases: a batch rebuild of `person` on SQLite would drop a table that
    # notices and acknowledgments still reference.
    op.add_column("person", sa.Column("title", sa.String(length=100), nullable=True))
    op.add_column("person", sa.Column("unit", sa.String(length=200), nullable=True))
    op.add_column("person", sa.Column("backup_phone", sa.String(length=20), nullable=True))


def downgrade() -> None:
    # SQLite ≥ 3.35 and PostgreSQL both drop a column in place.
    for column in ("backup_phone", "unit", "title"):
        op.execute(f"ALTER TABLE person DROP COLUMN {column}")
