"""The inspection log on a real SQLite file and a real PostgreSQL server (the same tests on both)."""

from __future__ import annotations

import threading
from pathlib import Path
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the inspection log needs the db extra: pip install -e '.[db]'")
pytest.importorskip("alembic", reason="the inspection log needs the db extra: pip install -e '.[db]'")

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from steelinspect import rle
from steelinspect.errors import ConfigError, LogError
from steelinspect.inspect_log import Bands, DefectRegion, LogFilter, open_log, regions_from_masks

MODELS = {"binary": {"weights_id": "b" * 32, "thresholds": [0.5]},
          "multiclass": {"weights_id": "m" * 32, "thresholds": [0.5, 0.5, 0.5, 0.5]}}
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


def row(image_id: str, p_defect: float, classes: str = "", p_class=(0.1, 0.1, 0.1, 0.1)) -> dict:
    return {"ImageId": image_id, "p_defect": p_defect, "has_defect": bool(classes), "classes": classes,
            **{f"p_class_{c}": p for c, p in zip((1, 2, 3, 4), p_class)}}


@pytest.fixture
def log(log_url):
    with open_log(log_url) as opened:
        yield opened


def test_the_migration_creates_the_schema_the_models_describe(log):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from steelinspect.inspect_log.models import Base

    tables = set(sa_inspect(log.engine).get_table_names())
    assert {"model_set", "inspection", "inspection_class", "defect", "review", "alembic_version"} <= tables
    with log.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
        # Types are compared by alembic's default rules; a column, index or constraint left out of the
        # migration (or of the models) shows up here.
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    indexes = {ix["name"] for ix in sa_inspect(log.engine).get_indexes("inspection")}
    assert {"ix_inspection_coil_frame", "ix_inspection_band_id", "ix_inspection_inspected_at",
            "ix_inspection_band_uncertainty", "ix_inspection_path", "ix_inspection_coil_id",
            "ix_inspection_band_inspected_at"} <= indexes


def test_a_log_written_at_the_first_schema_is_migrated_with_its_rows(log_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from steelinspect.inspect_log.store import MIGRATIONS, normalise_url

    url = normalise_url(log_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO model_set (id, key, models, created_at) "
                                "VALUES (1, 'k', '{}', '2026-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO inspection (id, image_id, coil, frame, inspected_at, model_set_id, p_defect, p_class_1, "
            "p_class_2, p_class_3, p_class_4, has_defect, classes, band) VALUES (1, 'old.jpg', 'C', 0, "
            "'2026-01-01 00:00:00', 1, 0.5, 0, 0, 0, 0, false, '', 'REVIEW')"))
    engine.dispose()
    with open_log(log_url) as log:
        (entry,) = log.query().entries
        assert entry.image_id == "old.jpg" and entry.band == "REVIEW" and entry.uncertainty == 0.0
        assert log.problems() == []


def test_uncertainty_is_highest_in_the_middle_of_the_review_band(log):
    ids = [log.record(row(f"{p}.jpg", p), models=MODELS) for p in (0.1, 0.31, 0.5, 0.65, 0.9)]
    found = {e.id: e.uncertainty for e in log.query().entries}
    assert found[ids[0]] == 0.0 and found[ids[4]] == 0.0
    assert found[ids[2]] == pytest.approx(1.0)
    assert 0.0 < found[ids[1]] < found[ids[3]] < found[ids[2]]


def test_problems_are_kept_newest_first(log):
    log.record_problem("/cam/a.jpg", "not an image", "watch", size=10, mtime_ns=5)
    log.record_problem("/cam/b.jpg", "truncated JPEG", "watch")
    assert [(p.path, p.message, p.source) for p in log.problems()] == [
        ("/cam/b.jpg", "truncated JPEG", "watch"), ("/cam/a.jpg", "not an image", "watch")]
    assert log.problems()[1].size == 10 and log.problems()[1].mtime_ns == 5


def test_opening_again_keeps_the_rows_and_a_newer_schema_is_refused(log_url):
    with open_log(log_url) as log:
        log.record(row("a.jpg", 0.9, "3"), models=MODELS)
    with open_log(log_url) as log:  # the migration does nothing the second time
        assert log.count() == 1
        with log.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(LogError, match="schema"):
        open_log(log_url)


def test_record_and_query_round_trip_with_regions(log):
    masks = np.zeros((4, 256, 1600), dtype=bool)
    masks[2, 10:20, 100:150] = True  # class 3: two regions
    masks[2, 100:110, 900:905] = True
    masks[0, 200:201, 0:3] = True  # class 1: one region
    regions = regions_from_masks(masks)
    assert [(r.class_id, r.area) for r in regions] == [(1, 3), (3, 500), (3, 50)]
    assert regions[1].x == 100 and regions[1].y == 10 and regions[1].width == 50 and regions[1].height == 10
    at = T0 + timedelta(minutes=5)
    inspection_id = log.record(row("a.jpg", 0.91, "1 3", (0.7, 0.1, 0.95, 0.05)), regions, MODELS,
                               coil="C1", frame=7, path="/cam/C1/a.jpg", at=at)
    (entry,) = log.query().entries
    assert entry.id == inspection_id and entry.image_id == "a.jpg" and entry.path == "/cam/C1/a.jpg"
    assert (entry.coil, entry.frame, entry.band, entry.classes) == ("C1", 7, "NG", (1, 3))
    assert entry.inspected_at == at and entry.inspected_at.tzinfo is not None
    assert entry.p_defect == pytest.approx(0.91) and entry.p_class == pytest.approx((0.7, 0.1, 0.95, 0.05))
    stored = log.defects(inspection_id)
    assert [s.region for s in stored] == regions
    rebuilt = np.zeros_like(masks)
    for s in stored:
        rebuilt[s.region.class_id - 1] |= rle.decode(s.region.rle)
    assert np.array_equal(rebuilt, masks)
    models = log.models(entry.model_set_id)
    assert models["binary"] == MODELS["binary"] and models["bands"] == {"t1": 0.3, "t2": 0.7}
    # The same models and bands share one model set; other bands are another set.
    assert log.query().entries[0].model_set_id == log.model_set_id(MODELS)
    with open_log(log.url, bands=Bands(0.2, 0.8)) as other:
        assert other.model_set_id(MODELS) != entry.model_set_id


def test_bands_split_p_defect_into_ok_review_ng(log):
    for i, p in enumerate([0.05, 0.3, 0.5, 0.7, 0.95]):
        log.record(row(f"{i}.jpg", p), models=MODELS)
    bands = {e.image_id: e.band for e in log.query().entries}
    assert bands == {"0.jpg": "OK", "1.jpg": "REVIEW", "2.jpg": "REVIEW", "3.jpg": "REVIEW", "4.jpg": "NG"}
    assert Bands(0.5, 0.5).band(0.49) == "OK" and Bands(0.5, 0.5).band(0.51) == "NG"
    with pytest.raises(ConfigError):
        Bands(0.8, 0.2)


def test_reviews_are_added_beside_the_inspection_never_over_it(log):
    regions = [DefectRegion(3, 50, 0, 0, 10, 5, "1 5 257 5"), DefectRegion(1, 4, 20, 0, 2, 2, "5121 2 5377 2")]
    a = log.record(row("a.jpg", 0.6, "1 3"), regions, MODELS)
    b = log.record(row("b.jpg", 0.5, "2"), models=MODELS)
    log.record(row("c.jpg", 0.1), models=MODELS)
    before = log.query().entries
    class1 = next(d.id for d in log.defects(a) if d.region.class_id == 1)
    log.add_review(a, "anna", "reject_region", defect_id=class1, at=T0)
    log.add_review(a, "ben", "confirm", at=T0 + timedelta(seconds=1))
    log.add_review(b, "anna", "correct", classes=[], note="a shadow", at=T0)
    assert log.query().entries == before  # what the model said is untouched
    assert [r.reviewer for r in log.reviews(a)] == ["anna", "ben"]
    reviewed = {r.entry.image_id: r for r in log.reviewed()}
    assert set(reviewed) == {"a.jpg", "b.jpg"}
    assert reviewed["a.jpg"].classes == (3,)  # its only class-1 region rejected: no class 1 either
    assert [s.region.class_id for s in reviewed["a.jpg"].regions] == [3]
    assert reviewed["b.jpg"].classes == () and reviewed["b.jpg"].regions == []
    assert log.count(LogFilter(reviewed=True)) == 2 and log.count(LogFilter(reviewed=False)) == 1
    # A later correction wins over an earlier one.
    log.add_review(b, "carl", "correct", classes=[2, 4], at=T0 + timedelta(hours=1))
    assert next(r for r in log.reviewed() if r.entry.id == b).classes == (2, 4)


def test_invalid_reviews_are_refused_with_the_reason(log):
    a = log.record(row("a.jpg", 0.6, "3"), [DefectRegion(3, 5, 0, 0, 5, 1, "1 1 257 1 513 1 769 1 1025 1")],
                   MODELS)
    b = log.record(row("b.jpg", 0.6, "3"), [DefectRegion(3, 5, 0, 0, 5, 1, "1 1 257 1 513 1 769 1 1025 1")],
                   MODELS)
    other_region = log.defects(b)[0].id
    with pytest.raises(LogError, match="no inspection with id 999"):
        log.add_review(999, "anna", "confirm")
    with pytest.raises(LogError, match="has no region"):
        log.add_review(a, "anna", "reject_region", defect_id=other_region)
    with pytest.raises(LogError, match="verdict"):
        log.add_review(a, "anna", "delete")
    with pytest.raises(LogError, match="reviewer"):
        log.add_review(a, " ", "confirm")
    with pytest.raises(LogError, match="classes"):
        log.add_review(a, "anna", "correct", classes=[5])
    assert log.reviews(a) == []
    with pytest.raises(LogError, match="p_defect"):
        log.record({"ImageId": "x.jpg", "classes": ""}, models=MODELS)
    with pytest.raises(LogError, match="classes must be among"):
        log.record(row("x.jpg", 0.9, "7"), models=MODELS)
    assert log.count() == 2


def _fill(log, n: int = 30) -> None:
    """n inspections over 3 coils, a minute apart, with p_defect cycling through the three bands."""
    for i in range(n):
        p = (0.1, 0.5, 0.9)[i % 3]
        classes = "" if p < 0.3 else ("3" if i % 2 else "1 4")
        log.record(row(f"{i:03d}.jpg", p, classes), models=MODELS, coil=f"C{i % 3}", frame=i // 3,
                   at=T0 + timedelta(minutes=i))


def _all_pages(log, filt: LogFilter, size: int) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = log.query(filt, page_size=size, after=after)
        pages.append([e.image_id for e in page.entries])
        if page.next_after is None:
            return pages
        after = page.next_after


def test_pages_cover_every_row_once_newest_first_and_stay_stable(log):
    _fill(log)
    pages = _all_pages(log, LogFilter(), 7)
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    flat = [i for p in pages for i in p]
    assert flat == [f"{i:03d}.jpg" for i in reversed(range(30))]
    first = log.query(page_size=7)
    log.record(row("new.jpg", 0.5), models=MODELS)  # rows added meanwhile do not shift the next page
    assert [e.image_id for e in log.query(page_size=7, after=first.next_after).entries] == pages[1]
    with pytest.raises(LogError, match="page size"):
        log.query(page_size=0)


def test_filters_by_coil_band_class_and_time(log):
    _fill(log)
    coil = [i for p in _all_pages(log, LogFilter(coil="C1"), 4) for i in p]
    assert coil == [f"{i:03d}.jpg" for i in reversed(range(30)) if i % 3 == 1]
    ng = [i for p in _all_pages(log, LogFilter(band="NG"), 4) for i in p]
    assert ng == [f"{i:03d}.jpg" for i in reversed(range(30)) if i % 3 == 2]
    class4 = [i for p in _all_pages(log, LogFilter(class_id=4), 3) for i in p]
    assert class4 == [f"{i:03d}.jpg" for i in reversed(range(30)) if i % 3 and i % 2 == 0]
    window = LogFilter(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=20))
    assert [e.image_id for e in log.query(window).entries] == [f"{i:03d}.jpg" for i in reversed(range(10, 20))]
    both = LogFilter(coil="C2", band="NG", class_id=3, since=T0 + timedelta(minutes=15))
    assert [e.image_id for e in log.query(both).entries] == [f"{i:03d}.jpg" for i in (29, 23, 17)]
    assert log.count(both) == 3
    with pytest.raises(LogError, match="band"):
        log.query(LogFilter(band="MAYBE"))
    with pytest.raises(LogError, match="timezone"):
        log.query(LogFilter(since=datetime(2026, 1, 1)))


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with open_log(f"sqlite:///{tmp_path / 'new' / 'log.db'}") as log, log.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "new" / "log.db").is_file()  # the folder is made on first use


def test_two_writers_at_once_lose_no_row(log):
    """Two threads, each with its own open log on the same database (as two processes would be), write at
    once; every row arrives and every id is distinct."""
    n = 60
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with open_log(log.url) as own:
                for i in range(n):
                    own.record(row(f"{name}{i}.jpg", 0.5, "3"), models={**MODELS, "writer": name})
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert log.count() == 2 * n
    ids = [e.id for p in [log.query(page_size=1000)] for e in p.entries]
    assert len(set(ids)) == 2 * n


def test_a_bad_url_is_one_clear_error(tmp_path):
    with pytest.raises(LogError, match="not a database URL"):
        open_log("inspections.db")
    with pytest.raises(LogError, match="SQLite or PostgreSQL"):
        open_log("mysql+pymysql://u@localhost/x")


def test_sqlite_statistics_are_refreshed_at_open(tmp_path):
    """Without sqlite_stat1 SQLite cannot tell a coil from a band and may walk a whole band for a coil's page:
    open_log takes (sampled) statistics when there are none, an index lacks them, or the log has doubled."""
    url = f"sqlite:///{tmp_path / 'stats.db'}"

    def stats(log) -> dict:
        with log.engine.connect() as conn:
            return dict(conn.execute(text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'inspection'")).all())

    row = {"ImageId": "a.jpg", "p_defect": 0.5, "p_class_1": 0.1, "p_class_2": 0.1, "p_class_3": 0.9,
           "p_class_4": 0.1, "classes": "3"}
    with open_log(url) as log:
        log.record_many([(row, (), f"C{i % 3}", i, None, None) for i in range(10)])
    with open_log(url) as log:
        first = stats(log)
        assert {"ix_inspection_coil_id", "ix_inspection_band_inspected_at", "ix_inspection_band_id"} <= set(first)
        log.record_many([(row, (), "C9", i, None, None) for i in range(5)])
    with open_log(url) as log:
        assert stats(log) == first  # grown by half: the statistics still hold
        log.record_many([(row, (), "C9", i, None, None) for i in range(20)])
    with open_log(url) as log:
        assert int(stats(log)["ix_inspection_band_id"].split()[0]) == 35
