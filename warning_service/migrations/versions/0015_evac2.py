"""evac2: one evacuation notice per 包户责任人 per warning; shelter manager pages; departures from shelters.

- evacuation_task loses its foreign keys (notice, household, shelter): each cost every one of a county's
  16,000 rows a trigger call inside the issue transaction (measured: a third of opening the tasks); the one
  writer copies the ids from rows it reads in the same statement, and none of those rows is ever deleted.
- evacuation_task.notice_id is no longer unique (the keeper's one notice covers all their households); it is
  indexed instead, and notice gets the partial index ix_notice_evacuation (warning_id, person_id)
  WHERE reason = 'evacuation' to find a keeper's notice (not unique: warnings opened before this revision
  have one notice per household).
- evacuation_task.keeper_id: the 包户责任人 the task was opened for.
- evacuation_task.departed_people/departed_at: the shelter manager records people leaving.
- shelter_link: the manager's page of one warning (/s/<token>).

Revision ID: 0012_evac2
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

import warning_service.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

EVAC = sa.text("reason = 'evacuation'")


def _task_table(old: bool, *, unique_notice: bool = True) -> sa.Table:
    """evacuation_task as 0006 made it (`old`) or as this revision leaves it: SQLite cannot drop unnamed
    constraints but by a rebuild from such a description."""
    md = sa.MetaData()
    for name in ("notice", "evac_household", "shelter"):
        sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True))
    return sa.Table(
        "evacuation_task", md,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shelter_id", sa.Integer(), nullable=True),
        sa.Column("people_moved", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("arrived_people", sa.Integer(), nullable=True),
        sa.Column("arrived_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("returned_early", sa.Boolean(), nullable=False),
        sa.Column("released_at", warning_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        *(
            [
                sa.ForeignKeyConstraint(["household_id"], ["evac_household.id"]),
                sa.ForeignKeyConstraint(["notice_id"], ["notice.id"], initially="DEFERRED", deferrable=True),
                sa.ForeignKeyConstraint(["shelter_id"], ["shelter.id"]),
                *([sa.UniqueConstraint("notice_id")] if unique_notice else []),
            ]
            if old
            else []
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("warning_id", "household_id", name="uq_evacuation_task_household"),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("evacuation_task_notice_id_key", "evacuation_task", type_="unique")
        for fk in ("notice_id", "household_id", "shelter_id"):
            op.drop_constraint(f"evacuation_task_{fk}_fkey", "evacuation_task", type_="foreignkey")
        op.create_index("ix_evacuation_task_notice_id", "evacuation_task", ["notice_id"])
        op.add_column("evacuation_task", sa.Column("keeper_id", sa.Integer(), nullable=True))
        op.add_column("evacuation_task", sa.Column("departed_people", sa.Integer(), nullable=True))
        op.add_column("evacuation_task", sa.Column("departed_at", warning_service.db.UTCDateTime(timezone=True),
                                                   nullable=True))
    else:
        with op.batch_alter_table("evacuation_task", copy_from=_task_table(False), recreate="always") as b:
            b.create_index("ix_evacuation_task_notice_id", ["notice_id"])
            b.add_column(sa.Column("keeper_id", sa.Integer(), nullable=True))
            b.add_column(sa.Column("departed_people", sa.Integer(), nullable=True))
            b.add_column(sa.Column("departed_at", warning_service.db.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE evacuation_task SET keeper_id = (SELECT keeper_id FROM evac_household h "
               "WHERE h.id = evacuation_task.household_id)")
    op.create_index("ix_notice_evacuation", "notice", ["warning_id", "person_id"],
                    sqlite_where=EVAC, postgresql_where=EVAC)
    op.create_table(
        "shelter_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("warning_id", sa.Integer(), nullable=False),
        sa.Column("shelter_id", sa.Integer(), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", warning_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["warning_id"], ["early_warning.id"]),
        sa.ForeignKeyConstraint(["shelter_id"], ["shelter.id"]),
        sa.ForeignKeyConstraint(["manager_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("warning_id", "shelter_id", name="uq_shelter_link"),
    )
    op.create_index("ix_shelter_link_outbox_id", "shelter_link", ["outbox_id"])


def downgrade() -> None:
    # notice_id stays non-unique: tasks opened under this revision share their keeper's notice, and the
    # downgrade cannot split it into one per household.
    op.drop_index("ix_shelter_link_outbox_id", table_name="shelter_link")
    op.drop_table("shelter_link")
    op.drop_index("ix_notice_evacuation", table_name="notice", sqlite_where=EVAC, postgresql_where=EVAC)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("evacuation_task", "departed_at")
        op.drop_column("evacuation_task", "departed_people")
        op.drop_column("evacuation_task", "keeper_id")
        op.drop_index("ix_evacuation_task_notice_id", table_name="evacuation_task")
        op.create_foreign_key("evacuation_task_household_id_fkey", "evacuation_task", "evac_household",
                              ["household_id"], ["id"])
        op.create_foreign_key("evacuation_task_shelter_id_fkey", "evacuation_task", "shelter", ["shelter_id"], ["id"])
        op.create_foreign_key("evacuation_task_notice_id_fkey", "evacuation_task", "notice", ["notice_id"], ["id"],
                              deferrable=True, initially="DEFERRED")
    else:
        # The rebuild from 0006's description drops the departure columns with the old table.
        with op.batch_alter_table(
            "evacuation_task", copy_from=_task_table(True, unique_notice=False), recreate="always"
        ):
            pass
