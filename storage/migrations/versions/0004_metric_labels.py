"""Training metrics name their stage as (kind, label): 'heal' and '<variant>#<step>', no longer one string.

An unnamed recipe's heal stage ('heal prune-heads-0.3+prune-neurons-0.3+heal#3') overflowed the 32 characters
of metrics.stage, which PostgreSQL refuses. Rows written before are split once, here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

metrics = sa.table("metrics", sa.column("stage", sa.String), sa.column("label", sa.String))


def upgrade() -> None:
    op.add_column("metrics", sa.Column("label", sa.String(200), nullable=False, server_default=""))
    conn = op.get_bind()
    for (stage,) in conn.execute(sa.select(metrics.c.stage).where(metrics.c.stage.like("% %")).distinct()).all():
        kind, label = stage.split(" ", 1)
        if kind == "labels-only":  # the one kind whose name has a space
            continue
        conn.execute(metrics.update().where(metrics.c.stage == stage).values(stage=kind, label=label))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(
        metrics.update().where(metrics.c.label != "").values(stage=sa.func.substr(metrics.c.stage + " " + metrics.c.label, 1, 32))
    )
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("label")
