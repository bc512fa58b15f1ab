"""Job liveness: which worker runs a job, its heartbeat, and a cancel request.

Lets a restarted worker tell a job whose worker died (kill -9, power loss) from one still running.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild), which also keeps SQLite's AUTOINCREMENT on jobs.id.
    op.add_column("jobs", sa.Column("worker", sa.String(255)))
    op.add_column("jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    op.add_column("jobs", sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancel_requested")
        batch.drop_column("heartbeat_at")
        batch.drop_column("worker")
