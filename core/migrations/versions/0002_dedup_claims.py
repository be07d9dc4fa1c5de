"""dedup claims: one row per live idempotency key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dedup_claims",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("alert_id", sa.String(length=26), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("dedup_claims", schema=None) as batch_op:
        batch_op.create_index("ix_dedup_claims_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dedup_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_dedup_claims_expires_at")
    op.drop_table("dedup_claims")
