"""reference panel contigs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:06:06.801925
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing panels get an empty list ("unknown"); the server default only fills them.
    with op.batch_alter_table("reference_panels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("contigs", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("reference_panels", schema=None) as batch_op:
        batch_op.alter_column("contigs", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("reference_panels", schema=None) as batch_op:
        batch_op.drop_column("contigs")
