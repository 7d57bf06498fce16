"""The review queue's order (inspection.uncertainty), lookups by path (a watched folder is inspected once), and
the problem table (files that could not be inspected, kept beside the verdicts).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from steelinspect.inspect_log.models import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspection") as batch:
        batch.add_column(sa.Column("uncertainty", sa.Float(), nullable=False, server_default="0"))
    op.create_index("ix_inspection_band_uncertainty", "inspection", ["band", "uncertainty"])
    op.create_index("ix_inspection_path", "inspection", ["path"])
    op.create_table(
        "problem",
        sa.Column("id", BigId, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_problem"),
    )
    op.create_index("ix_problem_path", "problem", ["path"])
    op.create_index("ix_problem_seen_at", "problem", ["seen_at"])


def downgrade() -> None:
    op.drop_table("problem")
    op.drop_index("ix_inspection_path", "inspection")
    op.drop_index("ix_inspection_band_uncertainty", "inspection")
    with op.batch_alter_table("inspection") as batch:
        batch.drop_column("uncertainty")
