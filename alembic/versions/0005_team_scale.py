"""team scale: dispatch outbox, worker losses, analysis owner, token expiry, browser sessions,
idempotency keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    # dispatched_at NULL means "still to be sent": jobs queued before this migration are sent
    # once more, which is harmless (a claim succeeds only on a queued job).
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_losses', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('dispatched_at', sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table('analyses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('dispatched_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_analyses_owner'), ['owner'], unique=False)
    # An analysis started before owners were kept belongs to its job's owner.
    op.execute('UPDATE analyses SET owner = (SELECT owner FROM jobs WHERE jobs.id = '
               'analyses.job_id)')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'browser_sessions',
        sa.Column('id', BigId, nullable=False),
        sa.Column('session_hash', sa.String(length=64), nullable=False),
        sa.Column('token_id', BigId, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'],
                                name=op.f('fk_browser_sessions_token_id_api_tokens'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_browser_sessions')),
        sa.UniqueConstraint('session_hash', name=op.f('uq_browser_sessions_session_hash')),
    )
    op.create_index(op.f('ix_browser_sessions_token_id'), 'browser_sessions', ['token_id'],
                    unique=False)
    op.create_table(
        'idempotency_keys',
        sa.Column('owner', sa.String(length=100), nullable=False),
        sa.Column('route', sa.String(length=50), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('job_id', BigId, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'],
                                name=op.f('fk_idempotency_keys_job_id_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('owner', 'route', 'key', name=op.f('pk_idempotency_keys')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('idempotency_keys')
    op.drop_index(op.f('ix_browser_sessions_token_id'), table_name='browser_sessions')
    op.drop_table('browser_sessions')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('analyses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analyses_owner'))
        batch_op.drop_column('dispatched_at')
        batch_op.drop_column('owner')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('dispatched_at')
        batch_op.drop_column('worker_losses')
