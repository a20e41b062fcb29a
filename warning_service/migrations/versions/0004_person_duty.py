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
    with op.batch_alter_table("person") as batch:
        batch.add_column(sa.Column("title", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("unit", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("backup_phone", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("person") as batch:
        batch.drop_column("backup_phone")
        batch.drop_column("unit")
        batch.drop_column("title")
