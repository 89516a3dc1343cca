"""user models: pushed models, their versions and files; plugin names in worker heartbeats

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'models',
        sa.Column('id', BigId, nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
        sa.UniqueConstraint('name', name=op.f('uq_models_name')),
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_owner'), ['owner'], unique=False)
    op.create_table(
        'model_versions',
        sa.Column('id', BigId, nullable=False),
        sa.Column('model_id', BigId, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('format', sa.String(length=10), nullable=False),
        sa.Column('input_shape', sa.JSON(), nullable=True),
        sa.Column('num_classes', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('inspection', sa.JSON(), nullable=True),
        sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('worker_id', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'],
                                name=op.f('fk_model_versions_model_id_models'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
        sa.UniqueConstraint('model_id', 'version', name=op.f('uq_model_versions_model_id')),
    )
    op.create_table(
        'model_files',
        sa.Column('id', BigId, nullable=False),
        sa.Column('version_id', BigId, nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'],
                                name=op.f('fk_model_files_version_id_model_versions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_model_files')),
        sa.UniqueConstraint('version_id', 'kind', name=op.f('uq_model_files_version_id')),
    )
    with op.batch_alter_table('model_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_files_version_id'), ['version_id'],
                              unique=False)
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plugins', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_column('plugins')
    with op.batch_alter_table('model_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_files_version_id'))
    op.drop_table('model_files')
    op.drop_table('model_versions')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_models_owner'))
    op.drop_table('models')
