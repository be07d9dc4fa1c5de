"""alerts.approval_deadline, alerts.approved_at: alerts that wait for a trader's approval

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_deadline", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approval_deadline")
