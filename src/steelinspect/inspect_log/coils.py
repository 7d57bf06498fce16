"""Coils in the inspection log: every coil with its counts, and one coil's frames in order (the strip map and the
coil report read these).

A coil's class counts are frames: how many of its frames the cascade gave each class (a frame with two regions of
class 3 counts once for class 3). Regions are counted separately, per frame (CoilFrame.defects).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from steelinspect.constants import CLASS_IDS
from steelinspect.errors import LogError
from steelinspect.inspect_log.bands import BANDS
from steelinspect.inspect_log.models import Inspection, InspectionClass
from steelinspect.inspect_log.store import (
    MAX_PAGE_SIZE,
    Entry,
    InspectionLog,
    StoredDefect,
    _apply_reviews,
    _entry,
    _stored,
)


@dataclass(frozen=True)
class CoilSummary:
    coil: str
    frames: int
    first_at: datetime
    last_at: datetime
    counts: dict[int, int]  # class -> frames the cascade gave that class
    bands: dict[str, int]  # band -> frames


@dataclass(frozen=True)
class CoilFrame:
    entry: Entry
    defects: list[StoredDefect]  # the regions the segmenter kept, as the model said (reviews do not remove them)
    reviewed_classes: tuple[int, ...] | None  # the classes after the reviews; None when nobody reviewed the frame


def coils(log: InspectionLog, limit: int = 100) -> list[CoilSummary]:
    """The coils in the log, the one with the newest row first (rows are added as frames are inspected)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise LogError(f"limit must be 1 to {MAX_PAGE_SIZE}, got {limit}")
    # First the newest coils' names alone, then the counts of those coils only (through the coil index): the
    # aggregates never read the whole table.
    names = _newest_coils(log, limit)
    if not names:
        return []
    band_sums = [func.sum(case((Inspection.band == band, 1), else_=0)) for band in BANDS]
    statement = (select(Inspection.coil, func.count(Inspection.id), func.min(Inspection.inspected_at),
                        func.max(Inspection.inspected_at), *band_sums)
                 .where(Inspection.coil.in_(names)).group_by(Inspection.coil))
    found = {r[0]: r for r in log._all(statement, "coils", rows=True)}
    counts: dict[str, dict[int, int]] = {name: {c: 0 for c in CLASS_IDS} for name in names}
    per_class = (select(Inspection.coil, InspectionClass.class_id, func.count(InspectionClass.inspection_id))
                 .join(InspectionClass, InspectionClass.inspection_id == Inspection.id)
                 .where(Inspection.coil.in_(names)).group_by(Inspection.coil, InspectionClass.class_id))
    for coil, class_id, n in log._all(per_class, "coil counts", rows=True):
        counts[coil][int(class_id)] = int(n)
    return [CoilSummary(name, int(found[name][1]), found[name][2], found[name][3], counts[name],
                        {band: int(n or 0) for band, n in zip(BANDS, found[name][4:])})
            for name in names if name in found]


def _newest_coils(log: InspectionLog, limit: int, chunk: int = 5000, most: int = 200_000) -> list[str]:
    """The `limit` coils with the newest rows, newest first. Walks the rows backwards by id (a coil's frames are
    consecutive rows, so the newest coils come within the last few thousand rows: 16 ms where a GROUP BY over
    200,000 rows took 140, bench/station_api.py); after `most` rows with still too few coils, the exact GROUP BY."""
    names: dict[str, None] = {}
    before = None
    for _ in range(max(1, most // chunk)):
        statement = select(Inspection.id, Inspection.coil).where(Inspection.coil.is_not(None))
        if before is not None:
            statement = statement.where(Inspection.id < before)
        rows = log._all(statement.order_by(Inspection.id.desc()).limit(chunk), "coils", rows=True)
        for _, coil in rows:
            names.setdefault(coil)
            if len(names) == limit:
                return list(names)
        if len(rows) < chunk:  # the first row reached: every coil seen
            return list(names)
        before = rows[-1][0]
    grouped = (select(Inspection.coil).where(Inspection.coil.is_not(None)).group_by(Inspection.coil)
               .order_by(func.max(Inspection.id).desc()).limit(limit))
    return [r[0] for r in log._all(grouped, "coils", rows=True)]


def coil_frames(log: InspectionLog, coil: str) -> list[CoilFrame]:
    """A coil's frames in frame order (frames without a number last; ties by id), with their regions and the
    classes their reviews settled on. Empty when the log has no such coil."""
    statement = (select(Inspection).where(Inspection.coil == coil)
                 .options(selectinload(Inspection.defects), selectinload(Inspection.reviews))
                 .order_by(Inspection.frame.is_(None), Inspection.frame, Inspection.id))
    frames = []
    for row in log._all(statement, "coil"):
        reviewed = _apply_reviews(row).classes if row.reviews else None
        frames.append(CoilFrame(_entry(row), [_stored(d) for d in row.defects], reviewed))
    return frames


def class_counts(frames: list[CoilFrame]) -> dict[int, int]:
    """Frames the cascade gave each class."""
    return {c: sum(c in f.entry.classes for f in frames) for c in CLASS_IDS}
