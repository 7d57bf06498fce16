"""The first schema: model_set, inspection, inspection_class, defect, review.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from steelinspect.inspect_log.models import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_set",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_set"),
        sa.UniqueConstraint("key", name="uq_model_set_key"),
    )
    op.create_table(
        "inspection",
        sa.Column("id", BigId, nullable=False),
        sa.Column("image_id", sa.String(255), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("coil", sa.String(128), nullable=True),
        sa.Column("frame", sa.Integer(), nullable=True),
        sa.Column("inspected_at", UTCDateTime(), nullable=False),
        sa.Column("model_set_id", BigId, nullable=False),
        sa.Column("p_defect", sa.Float(), nullable=False),
        *(sa.Column(f"p_class_{c}", sa.Float(), nullable=False) for c in (1, 2, 3, 4)),
        sa.Column("has_defect", sa.Boolean(), nullable=False),
        sa.Column("classes", sa.String(16), nullable=False),
        sa.Column("band", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inspection"),
        sa.ForeignKeyConstraint(["model_set_id"], ["model_set.id"], name="fk_inspection_model_set_id_model_set"),
        sa.CheckConstraint("band IN ('OK', 'REVIEW', 'NG')", name=op.f("ck_inspection_band")),
    )
    op.create_index("ix_inspection_coil_frame", "inspection", ["coil", "frame"])
    op.create_index("ix_inspection_band_id", "inspection", ["band", "id"])
    op.create_index("ix_inspection_inspected_at", "inspection", ["inspected_at"])
    op.create_index("ix_inspection_image_id", "inspection", ["image_id"])
    op.create_table(
        "inspection_class",
        sa.Column("inspection_id", BigId, nullable=False),
        sa.Column("class_id", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("inspection_id", "class_id", name="pk_inspection_class"),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspection.id"], ondelete="CASCADE",
                                name="fk_inspection_class_inspection_id_inspection"),
        sa.CheckConstraint("class_id BETWEEN 1 AND 4", name=op.f("ck_inspection_class_class_id")),
    )
    op.create_index("ix_inspection_class_class_inspection", "inspection_class", ["class_id", "inspection_id"])
    op.create_table(
        "defect",
        sa.Column("id", BigId, nullable=False),
        sa.Column("inspection_id", BigId, nullable=False),
        sa.Column("class_id", sa.SmallInteger(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in ("area", "x", "y", "width", "height")),
        sa.Column("rle", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_defect"),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspection.id"], ondelete="CASCADE",
                                name="fk_defect_inspection_id_inspection"),
        sa.CheckConstraint("class_id BETWEEN 1 AND 4", name=op.f("ck_defect_class_id")),
    )
    op.create_index("ix_defect_inspection_id", "defect", ["inspection_id"])
    op.create_index("ix_defect_class_id", "defect", ["class_id"])
    op.create_table(
        "review",
        sa.Column("id", BigId, nullable=False),
        sa.Column("inspection_id", BigId, nullable=False),
        sa.Column("defect_id", BigId, nullable=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("reviewed_at", UTCDateTime(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("classes", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_review"),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspection.id"], ondelete="CASCADE",
                                name="fk_review_inspection_id_inspection"),
        sa.ForeignKeyConstraint(["defect_id"], ["defect.id"], ondelete="CASCADE",
                                name="fk_review_defect_id_defect"),
        sa.CheckConstraint("verdict IN ('confirm', 'correct', 'reject_region')", name=op.f("ck_review_verdict")),
    )
    op.create_index("ix_review_inspection_id", "review", ["inspection_id"])
    op.create_index("ix_review_reviewed_at", "review", ["reviewed_at"])


def downgrade() -> None:
    for table in ("review", "defect", "inspection_class", "inspection", "model_set"):
        op.drop_table(table)
