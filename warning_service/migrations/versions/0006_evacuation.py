"""evacuation: danger zones, households, shelters, special people and places, evacuation tasks.

A task and a special notice name their notice before it is written (one INSERT … SELECT links each
household to its notice), so those references are checked at commit (DEFERRABLE INITIALLY DEFERRED).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import warning_service.db


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evac_threshold',
    sa.Column('subject', sa.String(length=8), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('hazard', sa.String(length=24), nullable=False),
    sa.Column('min_rank', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('subject', 'subject_id', 'hazard')
    )
    with op.batch_alter_table('evac_threshold', schema=None) as batch_op:
        batch_op.create_index('ix_evac_threshold_hazard', ['hazard', 'subject', 'min_rank'], unique=False)

    op.create_table('danger_zone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('village_code', sa.String(length=32), nullable=True),
    sa.Column('town_code', sa.String(length=32), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['region_code'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('danger_zone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_danger_zone_region_code'), ['region_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_danger_zone_town_code'), ['town_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_danger_zone_village_code'), ['village_code'], unique=False)

    op.create_table('evac_household',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('people', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('vulnerable', sa.String(length=120), nullable=False),
    sa.Column('keeper_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['keeper_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['region_code'], ['region.code'], ),
    sa.ForeignKeyConstraint(['zone_id'], ['danger_zone.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('evac_household', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evac_household_keeper_id'), ['keeper_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evac_household_region_code'), ['region_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_evac_household_zone_id'), ['zone_id'], unique=False)

    op.create_table('shelter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manager_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['region_code'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('shelter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shelter_region_code'), ['region_code'], unique=False)

    op.create_table('special_person',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('helper_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['helper_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['region_code'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('special_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_special_person_helper_id'), ['helper_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_special_person_region_code'), ['region_code'], unique=False)

    op.create_table('special_place',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['region_code'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('special_place', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_special_place_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_special_place_region_code'), ['region_code'], unique=False)

    op.create_table('evacuation_release',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('region_code', sa.String(length=32), nullable=False),
    sa.Column('tasks', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['region_code'], ['region.code'], ),
    sa.ForeignKeyConstraint(['warning_id'], ['early_warning.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('evacuation_release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evacuation_release_warning_id'), ['warning_id'], unique=False)

    op.create_table('evacuation_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('shelter_id', sa.Integer(), nullable=True),
    sa.Column('people_moved', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('arrived_people', sa.Integer(), nullable=True),
    sa.Column('arrived_at', warning_service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('returned_early', sa.Boolean(), nullable=False),
    sa.Column('released_at', warning_service.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', warning_service.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['evac_household.id'], ),
    sa.ForeignKeyConstraint(['notice_id'], ['notice.id'], initially='DEFERRED', deferrable=True),
    sa.ForeignKeyConstraint(['shelter_id'], ['shelter.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('notice_id'),
    sa.UniqueConstraint('warning_id', 'household_id', name='uq_evacuation_task_household')
    )
    op.create_table('special_notice',
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=8), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['notice_id'], ['notice.id'], initially='DEFERRED', deferrable=True),
    sa.ForeignKeyConstraint(['warning_id'], ['early_warning.id'], ),
    sa.PrimaryKeyConstraint('notice_id'),
    sa.UniqueConstraint('warning_id', 'subject', 'subject_id', name='uq_special_notice_subject')
    )
    with op.batch_alter_table('special_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_special_notice_warning_id'), ['warning_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('special_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_special_notice_warning_id'))

    op.drop_table('special_notice')
    op.drop_table('evacuation_task')
    with op.batch_alter_table('evacuation_release', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evacuation_release_warning_id'))

    op.drop_table('evacuation_release')
    with op.batch_alter_table('special_place', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_special_place_region_code'))
        batch_op.drop_index(batch_op.f('ix_special_place_contact_id'))

    op.drop_table('special_place')
    with op.batch_alter_table('special_person', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_special_person_region_code'))
        batch_op.drop_index(batch_op.f('ix_special_person_helper_id'))

    op.drop_table('special_person')
    with op.batch_alter_table('shelter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shelter_region_code'))

    op.drop_table('shelter')
    with op.batch_alter_table('evac_household', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evac_household_zone_id'))
        batch_op.drop_index(batch_op.f('ix_evac_household_region_code'))
        batch_op.drop_index(batch_op.f('ix_evac_household_keeper_id'))

    op.drop_table('evac_household')
    with op.batch_alter_table('danger_zone', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_danger_zone_village_code'))
        batch_op.drop_index(batch_op.f('ix_danger_zone_town_code'))
        batch_op.drop_index(batch_op.f('ix_danger_zone_region_code'))

    op.drop_table('danger_zone')
    with op.batch_alter_table('evac_threshold', schema=None) as batch_op:
        batch_op.drop_index('ix_evac_threshold_hazard')

    op.drop_table('evac_threshold')
