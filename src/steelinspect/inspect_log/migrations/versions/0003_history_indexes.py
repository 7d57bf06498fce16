"""History pages stay fast at a million rows when filters combine: a coil filter pages by (coil, id) instead of
walking a whole band by id, and a band with a time window ranges over (band, inspected_at) and sorts the few rows
inside it (bench/inspect_log.py --history-rows 1000000: 640 ms and 400 ms before, under 10 ms after).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inspection_coil_id", "inspection", ["coil", "id"])
    op.create_index("ix_inspection_band_inspected_at", "inspection", ["band", "inspected_at"])


def downgrade() -> None:
    op.drop_index("ix_inspection_band_inspected_at", "inspection")
    op.drop_index("ix_inspection_coil_id", "inspection")
