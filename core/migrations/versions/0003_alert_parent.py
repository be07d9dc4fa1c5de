"""alerts.parent_id: a fan-out's child alerts point at their parent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a foreign key to an existing table in place (Alembic copies it)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=26), nullable=True))
        batch_op.create_index("ix_alerts_parent_id", ["parent_id"], unique=False)
        batch_op.create_foreign_key("fk_alerts_parent_id_alerts", "alerts", ["parent_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_alerts_parent_id_alerts", type_="foreignkey")
        batch_op.drop_index("ix_alerts_parent_id")
        batch_op.drop_column("parent_id")
