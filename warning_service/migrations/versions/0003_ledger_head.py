"""report and ledger: the signed head checkpoint of the ledger; the ledger made append-only in PostgreSQL.

The reports need no schema of their own: the indexes of 0001 (notice by warning and state, outbox by
warning and channel, acknowledgment by notice and round) are what their aggregates scan.

Revision ID: 0003
Revises: 0002
"""
import hashlib
import hmac
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Row triggers refuse UPDATE and DELETE on sealed entries, so neither the application nor a careless
# script can rewrite history; whoever bypasses them (a superuser disabling triggers) is still caught
# by the hash chain and the head checkpoint. TRUNCATE is left to the owner (test fixtures use it).
_PG_APPEND_ONLY = ("""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
""", """
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
""")


def upgrade() -> None:
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT id, hash FROM ledger ORDER BY id DESC LIMIT 1")).first()
    if last is not None:
        # An existing ledger is anchored where it ends now, signed with this deployment's key.
        from warning_service.config import get_settings

        secret = get_settings().secret_key.get_secret_value()
        key = hashlib.sha256(b"warning-service ledger v1:" + secret.encode()).digest()
        payload = json.dumps(["head", last.id, last.hash], separators=(",", ":"))
        mac = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
        bind.execute(sa.text("INSERT INTO ledger_head (id, entry_id, hash, mac) VALUES (1, :i, :h, :m)"),
                     {"i": last.id, "h": last.hash, "m": mac})
    if bind.dialect.name == "postgresql":
        for statement in _PG_APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_append_only ON ledger")
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    op.drop_table("ledger_head")
