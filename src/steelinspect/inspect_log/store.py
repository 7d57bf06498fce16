"""The inspection log's library API: open (migrating to the current schema), record, review, query.

    log = open_log("sqlite:///runs/inspections.db")      # or "postgresql://user@host/db"
    log.record(row, defects, models, coil="C17", frame=3)
    log.add_review(inspection_id, "anna", "correct", classes=[3])
    page = log.query(LogFilter(band="REVIEW"), page_size=50); page = log.query(..., after=page.next_after)

Nothing here overwrites what the model said: an inspection row is written once, reviews are added beside it.
SQLite: WAL mode (readers never wait for the writer), foreign keys on, writes in BEGIN IMMEDIATE transactions
(two writers queue on the busy timeout instead of failing on a stale snapshot).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from sqlalchemy import Engine, create_engine, event, exists, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from steelinspect.constants import CLASS_IDS
from steelinspect.errors import LogError
from steelinspect.inspect_log.bands import BANDS, Bands, BandSet, as_band_set
from steelinspect.inspect_log.models import (
    VERDICTS,
    Defect,
    Inspection,
    InspectionClass,
    ModelSet,
    Problem,
    Review,
)
from steelinspect.inspect_log.regions import DefectRegion

DEFAULT_URL = "sqlite:///runs/inspections.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_PAGE_SIZE = 1000


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 (the driver the `db` extra installs), not SQLAlchemy's default psycopg2."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LogError(f"not a database URL: {url!r} (e.g. {DEFAULT_URL} or postgresql://user@host/db)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def shown(url: str) -> str:
    """The URL as messages show it: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@dataclass(frozen=True)
class LogFilter:
    """History filters; None means any. `until` is exclusive."""

    coil: str | None = None
    band: str | None = None
    class_id: int | None = None  # a class step 2 decided
    since: datetime | None = None
    until: datetime | None = None
    reviewed: bool | None = None
    image_id: str | None = None

    def validate(self) -> None:
        if self.band is not None and self.band not in BANDS:
            raise LogError(f"band must be one of {', '.join(BANDS)}, got {self.band!r}")
        if self.class_id is not None and self.class_id not in CLASS_IDS:
            raise LogError(f"class must be one of {', '.join(map(str, CLASS_IDS))}, got {self.class_id!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise LogError(f"{name} must be a timezone-aware time (UTC is stored)")


@dataclass(frozen=True)
class Entry:
    """One inspection as the history lists it."""

    id: int
    image_id: str
    path: str | None
    coil: str | None
    frame: int | None
    inspected_at: datetime
    p_defect: float
    p_class: tuple[float, float, float, float]
    classes: tuple[int, ...]
    band: str
    model_set_id: int
    uncertainty: float = 0.0


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next_after: int | None  # pass as `after` for the next page; None on the last page


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    reviewer: str
    reviewed_at: datetime
    verdict: str
    classes: tuple[int, ...] | None
    defect_id: int | None
    note: str | None


@dataclass(frozen=True)
class StoredDefect:
    id: int
    region: DefectRegion


@dataclass
class ReviewedImage:
    """An inspection with its reviews applied in order: what the people say is true."""

    entry: Entry
    classes: tuple[int, ...]  # the true classes after the reviews
    regions: list[StoredDefect]  # the regions still standing (rejected ones and those of removed classes gone)
    reviews: list[ReviewRecord] = field(default_factory=list)


def _parse_classes(text_: str | None) -> tuple[int, ...]:
    return tuple(int(c) for c in (text_ or "").split())


def _classes_text(classes: Iterable[int]) -> str:
    return " ".join(map(str, sorted(set(classes))))


def _entry(row: Inspection) -> Entry:
    return Entry(row.id, row.image_id, row.path, row.coil, row.frame, row.inspected_at, row.p_defect,
                 (row.p_class_1, row.p_class_2, row.p_class_3, row.p_class_4), _parse_classes(row.classes),
                 row.band, row.model_set_id, row.uncertainty)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # SQLAlchemy issues BEGIN itself (below); the driver's own implicit transactions would hide it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: never corrupt, one fsync per checkpoint
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and then writes fails at
        # once with SQLITE_BUSY when another writer committed in between; IMMEDIATE waits for the lock instead.
        immediate = connection.get_execution_options().get("steelinspect_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class InspectionLog:
    """An open inspection log. Thread-safe: each call uses its own session from the engine's pool."""

    def __init__(self, engine: Engine, bands: Bands | BandSet, url: str):
        self.engine, self.url = engine, url
        self.bands = as_band_set(bands)  # step 1's bands and the classes' (runs/bands.py)
        self._write_engine = engine.execution_options(steelinspect_write=True)
        self._model_sets: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def shown_url(self) -> str:
        return shown(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "InspectionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _session(self, write: bool) -> Session:
        return Session(self._write_engine if write else self.engine, expire_on_commit=False)

    def _fail(self, action: str, exc: SQLAlchemyError) -> LogError:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return LogError(f"could not {action}: {detail}", shown(self.url))

    # --- writing -------------------------------------------------------------------------------------------

    def model_set_id(self, models: dict) -> int:
        """The id of a model set (the models and decision parameters, bands included), added on first use."""
        described = {**models, "bands": self.bands.to_dict()}
        canonical = json.dumps(described, sort_keys=True, separators=(",", ":"), default=str)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        with self._lock:
            if key in self._model_sets:
                return self._model_sets[key]
        try:
            with self._session(write=True) as session, session.begin():
                found = session.scalar(select(ModelSet.id).where(ModelSet.key == key))
                if found is None:
                    entry = ModelSet(key=key, models=json.loads(canonical), created_at=datetime.now(timezone.utc))
                    session.add(entry)
                    session.flush()
                    found = entry.id
        except SQLAlchemyError as exc:
            if self.dialect == "postgresql":  # another process added the same set in between: read it
                with self._session(write=False) as session:
                    found = session.scalar(select(ModelSet.id).where(ModelSet.key == key))
                if found is None:
                    raise self._fail("record the model set", exc) from exc
            else:
                raise self._fail("record the model set", exc) from exc
        with self._lock:
            self._model_sets[key] = found
        return found

    def _inspection(self, row: dict, defects: Sequence[DefectRegion], model_set_id: int, coil, frame, path,
                    at: datetime | None) -> Inspection:
        try:
            p_defect = float(row["p_defect"])
            p_class = [float(row[f"p_class_{c}"]) for c in CLASS_IDS]
            classes = _parse_classes(row.get("classes", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise LogError(f"a prediction row needs p_defect, p_class_1..4 and classes: {exc}") from None
        if any(c not in CLASS_IDS for c in classes):
            raise LogError(f"classes must be among {CLASS_IDS}, got {row.get('classes')!r}")
        at = at or datetime.now(timezone.utc)
        band, uncertainty = self.bands.decide(p_defect, p_class)
        inspection = Inspection(
            image_id=str(row["ImageId"]), path=None if path is None else str(path),
            coil=None if coil is None else str(coil), frame=frame, inspected_at=at, model_set_id=model_set_id,
            p_defect=p_defect, **{f"p_class_{c}": p for c, p in zip(CLASS_IDS, p_class)},
            has_defect=bool(row.get("has_defect", bool(classes))), classes=_classes_text(classes),
            band=band, uncertainty=uncertainty)
        inspection.decided = [InspectionClass(class_id=c) for c in sorted(set(classes))]
        inspection.defects = [Defect(class_id=d.class_id, area=d.area, x=d.x, y=d.y, width=d.width,
                                     height=d.height, rle=d.rle) for d in defects]
        return inspection

    def record(self, row: dict, defects: Sequence[DefectRegion] = (), models: dict | None = None,
               coil: str | None = None, frame: int | None = None, path: str | Path | None = None,
               at: datetime | None = None) -> int:
        """Store one prediction row (infer's dict: ImageId, p_defect, p_class_1..4, classes, has_defect; "path"
        when present) with its regions; returns the inspection id."""
        return self.record_many([(row, defects, coil, frame, path, at)], models)[0]

    def record_many(self, items: Iterable[tuple], models: dict | None = None) -> list[int]:
        """Store several (row, defects, coil, frame, path, at) in one transaction (one commit for a batch)."""
        set_id = self.model_set_id(models or {})
        built = [self._inspection(row, defects, set_id, coil, frame, path if path is not None else row.get("path"),
                                  at) for row, defects, coil, frame, path, at in items]
        try:
            with self._session(write=True) as session, session.begin():
                session.add_all(built)
                session.flush()
                return [i.id for i in built]
        except SQLAlchemyError as exc:
            raise self._fail("record the inspection", exc) from exc

    def add_review(self, inspection_id: int, reviewer: str, verdict: str, classes: Iterable[int] | None = None,
                   defect_id: int | None = None, note: str | None = None, at: datetime | None = None) -> int:
        """Add a person's verdict on an inspection: "confirm" (the model was right), "correct" (the true classes
        are `classes`, possibly none) or "reject_region" (region `defect_id` of this inspection is not a
        defect). Returns the review id. The inspection itself is never changed."""
        if verdict not in VERDICTS:
            raise LogError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        reviewer = (reviewer or "").strip()
        if not reviewer or len(reviewer) > 128:
            raise LogError("a review needs the reviewer's name (1 to 128 characters)")
        classes_text = None
        if verdict == "correct":
            if classes is None:
                raise LogError("a 'correct' review needs the true classes (an empty list: no defect)")
            classes = list(classes)
            if any(c not in CLASS_IDS for c in classes):
                raise LogError(f"classes must be among {CLASS_IDS}, got {classes}")
            classes_text = _classes_text(classes)
        elif classes is not None:
            raise LogError(f"classes are given with the 'correct' verdict only, not {verdict!r}")
        if (verdict == "reject_region") != (defect_id is not None):
            raise LogError("'reject_region' needs the region's defect id, and only it takes one")
        try:
            with self._session(write=True) as session, session.begin():
                if session.get(Inspection, inspection_id) is None:
                    raise LogError(f"no inspection with id {inspection_id}", shown(self.url))
                if defect_id is not None:
                    defect = session.get(Defect, defect_id)
                    if defect is None or defect.inspection_id != inspection_id:
                        raise LogError(f"inspection {inspection_id} has no region with id {defect_id}",
                                       shown(self.url))
                review = Review(inspection_id=inspection_id, defect_id=defect_id, reviewer=reviewer,
                                reviewed_at=at or datetime.now(timezone.utc), verdict=verdict,
                                classes=classes_text, note=note)
                session.add(review)
                session.flush()
                return review.id
        except SQLAlchemyError as exc:
            raise self._fail("add the review", exc) from exc

    def record_problem(self, path: str | Path, message: str, source: str, size: int | None = None,
                       mtime_ns: int | None = None, at: datetime | None = None) -> int:
        """Keep a file that could not be inspected (and why) beside the verdicts; returns its id."""
        problem = Problem(path=str(path), message=str(message)[:2000], source=source, size=size,
                          mtime_ns=mtime_ns, seen_at=at or datetime.now(timezone.utc))
        try:
            with self._session(write=True) as session, session.begin():
                session.add(problem)
                session.flush()
                return problem.id
        except SQLAlchemyError as exc:
            raise self._fail("record the problem", exc) from exc

    def problems(self, limit: int = 100) -> list[Problem]:
        """The newest problems first."""
        return self._all(select(Problem).order_by(Problem.id.desc()).limit(limit), "problems")

    # --- what a folder watcher needs (indexed look-ups by path) ---------------------------------------------

    def inspected_paths(self, paths: Iterable[str], chunk: int = 500) -> set[str]:
        """Those of `paths` that some inspection already has as its path."""
        paths = list(dict.fromkeys(map(str, paths)))
        found: set[str] = set()
        for i in range(0, len(paths), chunk):
            part = paths[i:i + chunk]
            found.update(self._all(select(Inspection.path).where(Inspection.path.in_(part)).distinct(),
                                   "inspected paths"))
        return found

    def problem_states(self, paths: Iterable[str], chunk: int = 500) -> set[tuple[str, int | None, int | None]]:
        """(path, size, mtime_ns) of every problem recorded for one of `paths`: the file as it was seen then."""
        paths = list(dict.fromkeys(map(str, paths)))
        found: set[tuple] = set()
        for i in range(0, len(paths), chunk):
            statement = (select(Problem.path, Problem.size, Problem.mtime_ns)
                         .where(Problem.path.in_(paths[i:i + chunk])).distinct())
            try:
                with self._session(write=False) as session:
                    found.update(tuple(r) for r in session.execute(statement).all())
            except SQLAlchemyError as exc:
                raise self._fail("read the problems", exc) from exc
        return found

    def last_frame(self, coil: str) -> int | None:
        """The highest frame index logged for `coil` (None when it has none)."""
        try:
            with self._session(write=False) as session:
                return session.scalar(select(func.max(Inspection.frame)).where(Inspection.coil == coil))
        except SQLAlchemyError as exc:
            raise self._fail("read the coil's frames", exc) from exc

    # --- reading -------------------------------------------------------------------------------------------

    def _where(self, filt: LogFilter):
        filt.validate()
        conditions = []
        if filt.coil is not None:
            conditions.append(Inspection.coil == filt.coil)
        if filt.band is not None:
            conditions.append(Inspection.band == filt.band)
        if filt.image_id is not None:
            conditions.append(Inspection.image_id == filt.image_id)
        if filt.class_id is not None:
            conditions.append(exists().where(InspectionClass.inspection_id == Inspection.id,
                                             InspectionClass.class_id == filt.class_id))
        if filt.since is not None:
            conditions.append(Inspection.inspected_at >= filt.since)
        if filt.until is not None:
            conditions.append(Inspection.inspected_at < filt.until)
        if filt.reviewed is not None:
            any_review = exists().where(Review.inspection_id == Inspection.id)
            conditions.append(any_review if filt.reviewed else ~any_review)
        return conditions

    def query(self, filt: LogFilter = LogFilter(), page_size: int = 50, after: int | None = None) -> Page:
        """One page of inspections matching `filt`, newest first (by id, keyset pagination: a page stays the
        same while rows are added, and the cost does not grow with the page number)."""
        statement = self.query_statement(filt, page_size, after)
        try:
            with self._session(write=False) as session:
                rows = session.scalars(statement).all()
        except SQLAlchemyError as exc:
            raise self._fail("query the log", exc) from exc
        entries = [_entry(r) for r in rows[:page_size]]
        return Page(entries, entries[-1].id if len(rows) > page_size else None)

    def query_statement(self, filt: LogFilter = LogFilter(), page_size: int = 50, after: int | None = None):
        """The SELECT behind `query` (one row more than the page, to know whether another page follows)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise LogError(f"page size must be 1 to {MAX_PAGE_SIZE}, got {page_size}")
        statement = select(Inspection).where(*self._where(filt))
        if after is not None:
            statement = statement.where(Inspection.id < after)
        return statement.order_by(Inspection.id.desc()).limit(page_size + 1)

    def count(self, filt: LogFilter = LogFilter()) -> int:
        try:
            with self._session(write=False) as session:
                return session.scalar(select(func.count(Inspection.id)).where(*self._where(filt)))
        except SQLAlchemyError as exc:
            raise self._fail("count the log", exc) from exc

    def _all(self, statement, what: str, rows: bool = False) -> list:
        """Every result of a read: ORM objects (or single values), or, with rows, tuples of the selected columns."""
        try:
            with self._session(write=False) as session:
                result = session.execute(statement) if rows else session.scalars(statement)
                return list(result.all())
        except SQLAlchemyError as exc:
            raise self._fail(f"read the {what}", exc) from exc

    def defects(self, inspection_id: int) -> list[StoredDefect]:
        rows = self._all(select(Defect).where(Defect.inspection_id == inspection_id).order_by(Defect.id), "regions")
        return [_stored(d) for d in rows]

    def reviews(self, inspection_id: int) -> list[ReviewRecord]:
        rows = self._all(select(Review).where(Review.inspection_id == inspection_id)
                         .order_by(Review.reviewed_at, Review.id), "reviews")
        return [_review(r) for r in rows]

    def models(self, model_set_id: int) -> dict:
        found = next(iter(self._all(select(ModelSet).where(ModelSet.id == model_set_id), "model set")), None)
        if found is None:
            raise LogError(f"no model set with id {model_set_id}", shown(self.url))
        return found.models

    def reviewed(self, filt: LogFilter = LogFilter(), chunk: int = 500) -> Iterator[ReviewedImage]:
        """Every reviewed inspection matching `filt` (oldest first) with its reviews applied in order: "correct"
        sets the classes (the latest wins) and drops the regions of other classes; "reject_region" drops that
        region, and its class when no region of it is left; "confirm" keeps what the model said. Streams in chunks, so any number of rows fits in flat memory."""
        filt = LogFilter(**{**filt.__dict__, "reviewed": True})
        last = 0
        while True:
            statement = (select(Inspection).where(*self._where(filt), Inspection.id > last)
                         .options(selectinload(Inspection.defects), selectinload(Inspection.reviews))
                         .order_by(Inspection.id).limit(chunk))
            rows = self._all(statement, "reviewed inspections")
            if not rows:
                return
            for row in rows:
                yield _apply_reviews(row)
            last = rows[-1].id

    # --- the inspection station (serve's /api/log) ------------------------------------------------------------

    def entry(self, inspection_id: int) -> Entry | None:
        """One inspection, or None when there is none with this id."""
        found = self._all(select(Inspection).where(Inspection.id == inspection_id), "inspection")
        return _entry(found[0]) if found else None

    def review_queue(self, limit: int = 20) -> list[Entry]:
        """The REVIEW band's inspections nobody has reviewed yet, the most uncertain first (ties: oldest first)."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise LogError(f"limit must be 1 to {MAX_PAGE_SIZE}, got {limit}")
        statement = (select(Inspection)
                     .where(Inspection.band == "REVIEW", ~exists().where(Review.inspection_id == Inspection.id))
                     .order_by(Inspection.uncertainty.desc(), Inspection.id).limit(limit))
        return [_entry(r) for r in self._all(statement, "review queue")]

    def band_counts(self, filt: LogFilter = LogFilter()) -> dict[str, int]:
        """How many inspections matching `filt` are in each band (every band named, 0 when empty)."""
        statement = (select(Inspection.band, func.count(Inspection.id)).where(*self._where(filt))
                     .group_by(Inspection.band))
        try:
            with self._session(write=False) as session:
                found = dict(session.execute(statement).all())
        except SQLAlchemyError as exc:
            raise self._fail("count the bands", exc) from exc
        return {band: int(found.get(band, 0)) for band in BANDS}

    def reviewed_ids(self, inspection_ids: Iterable[int]) -> set[int]:
        """Those of `inspection_ids` that have at least one review."""
        ids = sorted(set(inspection_ids))
        if not ids:
            return set()
        statement = select(Review.inspection_id).where(Review.inspection_id.in_(ids)).distinct()
        try:
            with self._session(write=False) as session:
                return set(session.scalars(statement).all())
        except SQLAlchemyError as exc:
            raise self._fail("read the reviews", exc) from exc


def _stored(d: Defect) -> StoredDefect:
    return StoredDefect(d.id, DefectRegion(d.class_id, d.area, d.x, d.y, d.width, d.height, d.rle))


def _review(r: Review) -> ReviewRecord:
    return ReviewRecord(r.id, r.reviewer, r.reviewed_at, r.verdict,
                        None if r.classes is None else _parse_classes(r.classes), r.defect_id, r.note)


def _apply_reviews(row: Inspection) -> ReviewedImage:
    reviews = sorted((_review(r) for r in row.reviews), key=lambda r: (r.reviewed_at, r.id))
    classes = _parse_classes(row.classes)
    class_of = {d.id: d.class_id for d in row.defects}
    rejected: set[int] = set()
    for review in reviews:
        if review.verdict == "correct":
            classes = review.classes or ()
        elif review.verdict == "reject_region":
            rejected.add(review.defect_id)
            rejected_class = class_of[review.defect_id]
            # Its class's last region rejected: the class is not there either (a later "correct" may say it is).
            if all(d in rejected for d, c in class_of.items() if c == rejected_class):
                classes = tuple(c for c in classes if c != rejected_class)
    regions = [_stored(d) for d in row.defects if d.id not in rejected and d.class_id in classes]
    return ReviewedImage(_entry(row), tuple(classes), regions, reviews)


SQLITE_ANALYSIS_LIMIT = 1000  # rows sampled per index: approximate statistics in ~60 ms at a million rows


def _refresh_statistics(connection) -> None:
    """SQLite plans from sqlite_stat1; without it (a log never analysed) it cannot tell a coil (a thousand rows)
    from a band (a third of the log) and may walk a whole band for a coil's page. Sampled ANALYZE at open when
    the inspection table has no statistics, an index without them, or has doubled since they were taken;
    PostgreSQL's autovacuum does this there."""
    has_stats = connection.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").scalar()
    rows = connection.exec_driver_sql("SELECT coalesce(max(id), 0) FROM inspection").scalar()
    if rows == 0:
        return
    if has_stats:
        indexes = connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inspection'").scalar()
        analysed = connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'inspection' AND idx IS NOT NULL").scalar()
        stat = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_inspection_band_id'").scalar()
        known = int(stat.split()[0]) if stat else 0
        if analysed >= indexes and known and rows < 2 * known:  # a migration's new index has no statistics yet
            return
    connection.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
    connection.exec_driver_sql("ANALYZE")


def _upgrade(engine: Engine, url: str) -> None:
    """Bring the database to the newest schema (creating it on first use). Runs in one transaction that holds
    the write lock (SQLite) or an advisory lock (PostgreSQL), so two processes opening a new log at once do
    not both create it."""
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    writer = engine.execution_options(steelinspect_write=True)
    try:
        with writer.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(7262012)"))  # any fixed number of ours
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if engine.dialect.name == "sqlite":
                _refresh_statistics(connection)
    except CommandError as exc:  # e.g. a database written by a newer steelinspect
        raise LogError(f"cannot bring the inspection log's schema up to date: {exc}", shown(url)) from None
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise LogError(f"cannot open the inspection log: {detail}", shown(url)) from None


def open_log(url: str = DEFAULT_URL, bands: Bands | BandSet | None = None) -> InspectionLog:
    """Open (create on first use, migrate to the current schema) the inspection log at a SQLAlchemy URL:
    sqlite:///relative/path.db, sqlite:////absolute/path.db, postgresql://user:pw@host/db (psycopg 3).
    `bands`: step 1's Bands, or a BandSet with the classes' too (runs.bands.load_bands); default 0.3 / 0.7."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise LogError(f"the inspection log runs on SQLite or PostgreSQL, not {parsed.get_backend_name()}",
                       shown(url))
    options: dict = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"check_same_thread": False}  # pooled connections move between threads
    try:
        engine = create_engine(url, **options)
    except (ArgumentError, ImportError) as exc:
        raise LogError(f"cannot use this database URL: {exc}", shown(url)) from None
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    try:
        _upgrade(engine, url)
    except LogError:
        engine.dispose()
        raise
    return InspectionLog(engine, as_band_set(bands), url)
