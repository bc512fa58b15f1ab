"""Workers on several machines: each worker's capacity and tags, what a job needs of the worker that runs it, and
where the machines of a job that trains on several meet.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("cores", sa.Integer, nullable=False),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("gpu_names", sa.String(500), nullable=False, server_default=""),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Plain ADD COLUMN (no table rebuild), which keeps SQLite's AUTOINCREMENT on jobs.id.
    op.add_column("jobs", sa.Column("needs", sa.JSON))
    op.add_column("jobs", sa.Column("rendezvous", sa.String(255)))
    op.add_column("jobs", sa.Column("machines_joined", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("machines_joined")
        batch.drop_column("rendezvous")
        batch.drop_column("needs")
    op.drop_table("workers")
