"""The inspection log's tables (SQLAlchemy 2 ORM). The schema is created and changed only by the Alembic
migrations in migrations/versions; tests/inspect_log checks that the migrated database matches these classes.

- model_set: one row per distinct set of models and decision parameters (weights fingerprints, thresholds,
  post-processing, bands), shared by every inspection made with it.
- inspection: one row per inspected image, never updated after it is written.
- inspection_class: the classes the cascade decided, one row each (an indexed class filter).
- defect: one row per defect region the segmenter kept (class, area, box, RLE of that region alone).
- review: what a person said about an inspection; rows are only added, the inspection stays as the model said.
- problem: a file that could not be inspected (unreadable, not an image, too large), with why and when.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Explicit constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY (which is 64-bit there anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")

VERDICTS = ("confirm", "correct", "reject_region")


class UTCDateTime(TypeDecorator):
    """Timestamps stored as UTC and read back as timezone-aware UTC on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps in the inspection log must be timezone-aware")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ModelSet(Base):
    __tablename__ = "model_set"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the canonical JSON below
    models: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Inspection(Base):
    __tablename__ = "inspection"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    image_id: Mapped[str] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(Text)
    coil: Mapped[str | None] = mapped_column(String(128))
    frame: Mapped[int | None] = mapped_column(Integer)
    inspected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    model_set_id: Mapped[int] = mapped_column(ForeignKey("model_set.id"))
    p_defect: Mapped[float] = mapped_column(Float)
    p_class_1: Mapped[float] = mapped_column(Float)
    p_class_2: Mapped[float] = mapped_column(Float)
    p_class_3: Mapped[float] = mapped_column(Float)
    p_class_4: Mapped[float] = mapped_column(Float)
    has_defect: Mapped[bool] = mapped_column(Boolean)
    classes: Mapped[str] = mapped_column(String(16))  # "1 3"; "" when clean (also in inspection_class)
    band: Mapped[str] = mapped_column(String(6))
    # 0 outside the REVIEW band, up to 1 in its middle: the review queue shows the most uncertain first.
    uncertainty: Mapped[float] = mapped_column(Float, server_default="0")

    model_set: Mapped[ModelSet] = relationship()
    decided: Mapped[list[InspectionClass]] = relationship(back_populates="inspection", cascade="all")
    defects: Mapped[list[Defect]] = relationship(back_populates="inspection", cascade="all",
                                                 order_by="Defect.id")
    reviews: Mapped[list[Review]] = relationship(back_populates="inspection", order_by="Review.id")

    __table_args__ = (
        CheckConstraint("band IN ('OK', 'REVIEW', 'NG')", name="band"),
        # History queries page by id (newest first) within a filter; each filter has an index ending in id.
        Index("ix_inspection_coil_frame", "coil", "frame"),
        Index("ix_inspection_band_id", "band", "id"),
        Index("ix_inspection_inspected_at", "inspected_at"),
        Index("ix_inspection_image_id", "image_id"),
        Index("ix_inspection_band_uncertainty", "band", "uncertainty"),
        Index("ix_inspection_path", "path"),
        # 0003: a coil pages by id without walking a whole band; a band within a time window ranges over time.
        Index("ix_inspection_coil_id", "coil", "id"),
        Index("ix_inspection_band_inspected_at", "band", "inspected_at"),
    )


class InspectionClass(Base):
    __tablename__ = "inspection_class"

    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspection.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)

    inspection: Mapped[Inspection] = relationship(back_populates="decided")

    __table_args__ = (
        CheckConstraint("class_id BETWEEN 1 AND 4", name="class_id"),
        Index("ix_inspection_class_class_inspection", "class_id", "inspection_id"),
    )


class Defect(Base):
    __tablename__ = "defect"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspection.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(SmallInteger)
    area: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    rle: Mapped[str] = mapped_column(Text)  # Kaggle RLE of this region alone, in the full-size image

    inspection: Mapped[Inspection] = relationship(back_populates="defects")

    __table_args__ = (
        CheckConstraint("class_id BETWEEN 1 AND 4", name="class_id"),
        Index("ix_defect_inspection_id", "inspection_id"),
        Index("ix_defect_class_id", "class_id"),
    )


class Review(Base):
    __tablename__ = "review"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspection.id", ondelete="CASCADE"))
    defect_id: Mapped[int | None] = mapped_column(ForeignKey("defect.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(128))
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verdict: Mapped[str] = mapped_column(String(16))
    classes: Mapped[str | None] = mapped_column(String(16))  # verdict "correct": the classes that are true
    note: Mapped[str | None] = mapped_column(Text)

    inspection: Mapped[Inspection] = relationship(back_populates="reviews")

    __table_args__ = (
        CheckConstraint("verdict IN ('confirm', 'correct', 'reject_region')", name="verdict"),
        Index("ix_review_inspection_id", "inspection_id"),
        Index("ix_review_reviewed_at", "reviewed_at"),
    )


class Problem(Base):
    __tablename__ = "problem"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)  # the file as it was seen: a changed file is tried again
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # watch | predict | upload
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_problem_path", "path"),
        Index("ix_problem_seen_at", "seen_at"),
    )
