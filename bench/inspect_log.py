"""Inspection log overhead: what `predict --db` adds per image to the prediction itself, measured in one run on
the same full-size 1600x256 images, for the classifier cascade alone and for cascade + segmenter; and the History
queries over a large log.

    python bench/inspect_log.py --images 32 [--skip-segment] [--db sqlite:////tmp/x.db | postgresql://...] [--out r.json]
    nice -n 10 python bench/inspect_log.py --history-rows 1000000 [--db URL]   # the History queries only

Models are freshly initialised default architectures (bench/inference.py's fresh_runs; speed does not depend on
the weights) with step 1 passing 53% of the images, as in the real training set; so about half the images get
masks, and each region is stored with its own RLE. The log's own time (regions + database writes, batches of
16 per transaction) is timed inside the sink, so the ratio does not depend on run-to-run noise of the models.
"record_many" times the log alone the way the sink calls it: regions cut from the dataset's true masks (real
defect shapes, not an untrained segmenter's noise) and record_many in batches of 16, against one timed cascade
pass over the same images. Goal (issue 12): under 5% of the cascade's time.

--history-rows N fills a new log with N inspections by SQLAlchemy Core executemany, 50,000 rows a transaction:
coils of 1000 frames one after the other, a frame a second, 53% defective with step 1's and step 2's
probabilities drawn near 0 or 1, the band and uncertainty from a BandSet with step 1 and class bands, classes
drawn with the real set's frequencies, half of the REVIEW band and 2% of the rest reviewed. It times the first
page (50 rows) and a deep keyset page (after an id 90% of the way back: in the log, in the coil, in the hour) of
each History filter, and the review
queue (REVIEW, unreviewed, uncertainty desc, id asc; its deep page 90% of the way down the queue).
Goal (issue 12): every page under 200 ms on SQLite at 1,000,000.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_model, synthetic  # noqa: E402
from inference import DEFECT_SHARE, fresh_runs, pass_share  # noqa: E402

from steelinspect import rle  # noqa: E402
from steelinspect.data.images import list_images  # noqa: E402
from steelinspect.data.master import RLE_COLUMNS, build_master  # noqa: E402
from steelinspect.infer.cascade import Cascade, PredictConfig, predict  # noqa: E402
from steelinspect.infer.segment_predict import PipelineOutputs, predict_pipeline  # noqa: E402
from steelinspect.inspect_log import Bands, BandSet, LogFilter, open_log, regions_from_masks  # noqa: E402
from steelinspect.inspect_log.models import Inspection, InspectionClass, Review  # noqa: E402
from steelinspect.inspect_log.sink import open_sink  # noqa: E402

CLASS_SHARE = {1: 0.13, 2: 0.04, 3: 0.73, 4: 0.11}  # share of defect images per class in the real training set
BENCH_BANDS = BandSet(Bands(0.3, 0.7), {c: Bands(0.25, 0.75) for c in CLASS_SHARE})
FRAMES_PER_COIL = 1000
DEEP = 0.9  # the deep page starts 90% of the way back into the log



def fill(log, rows: int, chunk: int = 50_000) -> None:
    """N realistic inspections by Core executemany, `chunk` rows (and their classes and reviews) a transaction."""
    from datetime import datetime, timedelta, timezone

    rng = random.Random(0)
    set_id = log.model_set_id({"bench": True})
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for first in range(1, rows + 1, chunk):
        inspections, classes, reviews = [], [], []
        for i in range(first, min(first + chunk, rows + 1)):
            defective = rng.random() < DEFECT_SHARE
            p = rng.betavariate(6, 1.2) if defective else rng.betavariate(1.2, 6)
            truth = {c for c in CLASS_SHARE if rng.random() < CLASS_SHARE[c]} or {3} if defective else set()
            p_class = [rng.betavariate(6, 1.2) if c in truth else rng.betavariate(1.2, 6) for c in CLASS_SHARE]
            chosen = sorted(c for c, pc in zip(CLASS_SHARE, p_class) if pc >= 0.5) or [3] if p >= 0.5 else []
            band, uncertainty = BENCH_BANDS.decide(p, p_class)
            inspections.append({"id": i, "image_id": f"{i:08d}.jpg", "path": f"/line/{i:08d}.jpg",
                                "coil": f"C{i // FRAMES_PER_COIL:05d}", "frame": i % FRAMES_PER_COIL,
                                "inspected_at": t0 + timedelta(seconds=i), "model_set_id": set_id,
                                "p_defect": p, **{f"p_class_{c}": pc for c, pc in zip(CLASS_SHARE, p_class)},
                                "has_defect": bool(chosen), "classes": " ".join(map(str, chosen)), "band": band,
                                "uncertainty": uncertainty})
            classes += [{"inspection_id": i, "class_id": c} for c in chosen]
            if rng.random() < (0.5 if band == "REVIEW" else 0.02):
                reviews.append({"inspection_id": i, "defect_id": None, "reviewer": "bench", "verdict": "confirm",
                                "reviewed_at": t0 + timedelta(seconds=i + 600), "classes": None, "note": None})
        with log.engine.begin() as conn:
            conn.execute(Inspection.__table__.insert(), inspections)
            if classes:
                conn.execute(InspectionClass.__table__.insert(), classes)
            if reviews:
                conn.execute(Review.__table__.insert(), reviews)


def review_queue_statement(limit: int = 20, after: tuple[float, int] | None = None):
    """The review queue as serve's /api/log/review asks it (InspectionLog.review_queue), with a keyset `after`
    (uncertainty, id) for the pages after the first."""
    from sqlalchemy import and_, exists, or_, select

    statement = select(Inspection).where(Inspection.band == "REVIEW",
                                         ~exists().where(Review.inspection_id == Inspection.id))
    if after is not None:
        u, i = after
        statement = statement.where(Inspection.uncertainty <= u,
                                    or_(Inspection.uncertainty < u, and_(Inspection.uncertainty == u,
                                                                         Inspection.id > i)))
    return statement.order_by(Inspection.uncertainty.desc(), Inspection.id).limit(limit)


def _timed(call, repeats: int = 3) -> tuple[float, object]:
    """The best of `repeats` runs in ms (after one warm-up run), and the last result."""
    result = call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return 1000 * best, result


def history(url: str, rows: int) -> dict:
    from datetime import datetime, timedelta, timezone

    from sqlalchemy.orm import Session

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    results = {}
    with open_log(url, bands=BENCH_BANDS) as log:
        start = time.perf_counter()
        present = log.count()
        if present == 0:
            fill(log, rows)
        elif present != rows:  # a log kept from an earlier run (--db) is reused when it holds exactly N rows
            raise SystemExit(f"{log.shown_url} holds {present} inspections, not {rows}: give a new --db")
        results["fill_s"] = time.perf_counter() - start
    # Opened again as a restarted server or a new predict opens it: open_log refreshes SQLite's statistics
    # (sampled) when they are missing or stale, nothing else does.
    start = time.perf_counter()
    with open_log(url, bands=BENCH_BANDS) as log:
        results["reopen_s"] = time.perf_counter() - start
        middle = rows // 2
        hour = LogFilter(since=t0 + timedelta(seconds=middle), until=t0 + timedelta(seconds=middle + 3600))
        coil_number = (rows // 3) // FRAMES_PER_COIL
        coil = f"C{coil_number:05d}"
        in_coil = coil_number * FRAMES_PER_COIL + int(FRAMES_PER_COIL * (1 - DEEP))  # 90% back in the coil
        filters = {
            "none": (LogFilter(), None),
            "coil": (LogFilter(coil=coil), in_coil),
            "band REVIEW": (LogFilter(band="REVIEW"), None),
            "band NG": (LogFilter(band="NG"), None),
            "class 2 (rare)": (LogFilter(class_id=2), None),
            "class 3": (LogFilter(class_id=3), None),
            "reviewed=false": (LogFilter(reviewed=False), None),
            "reviewed=true": (LogFilter(reviewed=True), None),
            "one hour": (hour, middle + 1800),
            "combined": (LogFilter(coil=coil, band="REVIEW", class_id=3, reviewed=False), in_coil),
            "combined + hour": (LogFilter(band="NG", class_id=1, reviewed=False, since=hour.since,
                                          until=hour.until), middle + 1800),
        }
        for name, (filt, deep_after) in filters.items():
            if deep_after is None:
                deep_after = max(int(rows * (1 - DEEP)), 2)
            first_ms, page = _timed(lambda: log.query(filt, page_size=50))
            deep_ms, deep = _timed(lambda: log.query(filt, page_size=50, after=deep_after))
            results[name] = {"first_page_ms": first_ms, "deep_page_ms": deep_ms, "first_rows": len(page.entries),
                             "deep_rows": len(deep.entries)}
            results[name]["plan"] = _plan(log, log.query_statement(filt, 50, deep_after))
        with Session(log.engine) as session:
            first_ms, queue = _timed(lambda: session.scalars(review_queue_statement()).all())
            ranked = session.execute(review_queue_statement(limit=rows).with_only_columns(
                Inspection.uncertainty, Inspection.id)).all()
            after = tuple(ranked[int(DEEP * (len(ranked) - 1))]) if ranked else None
            deep_ms, deep = _timed(lambda: session.scalars(review_queue_statement(after=after)).all())
            results["review queue"] = {"first_page_ms": first_ms, "deep_page_ms": deep_ms,
                                       "first_rows": len(queue), "deep_rows": len(deep)}
            results["review queue"]["plan"] = _plan(log, review_queue_statement(after=after))
    return results


def _plan(log, statement) -> str:
    """SQLite's query plan of a statement, one step after another."""
    if log.dialect != "sqlite":
        return ""
    compiled = statement.compile(log.engine)
    with log.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())).all()
    return "; ".join(r[-1] for r in rows)


def record_many_share(url: str, paths: list[Path], data: Path, cascade, config) -> dict:
    """The log alone as the sink drives it (regions from true masks + record_many per 16 images) against one
    timed cascade pass over the same images."""
    truth = build_master(data).set_index("ImageId")[RLE_COLUMNS]
    start, cpu = time.perf_counter(), time.process_time()
    rows = list(predict(paths, cascade, config))
    cascade_s, cascade_cpu = time.perf_counter() - start, time.process_time() - cpu
    masks = {p.name: rle.build_mask(list(truth.loc[p.name])) for p in paths}
    regions = 0
    with open_log(url, bands=BENCH_BANDS) as log:
        log.model_set_id({"binary": "bench"})
        start, cpu = time.perf_counter(), time.process_time()
        for first in range(0, len(rows), 16):
            batch = []
            for row in rows[first:first + 16]:
                found = regions_from_masks(masks[row["ImageId"]])
                regions += len(found)
                batch.append((row, found, "C1", first, row["path"], None))
            log.record_many(batch, {"binary": "bench"})
        log_s, log_cpu = time.perf_counter() - start, time.process_time() - cpu
    n = len(rows)
    # CPU seconds too (every thread of the process): on a machine shared with other jobs the wall-clock ratio
    # moves with their load, the CPU-time ratio much less.
    return {"cascade_ms": 1000 * cascade_s / n, "log_ms": 1000 * log_s / n, "log_share": log_s / cascade_s,
            "cascade_cpu_ms": 1000 * cascade_cpu / n, "log_cpu_ms": 1000 * log_cpu / n,
            "log_cpu_share": log_cpu / cascade_cpu, "regions_per_image": regions / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file in a temp folder)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--history-rows", type=int, default=0, help="time the History queries over this many rows")
    parser.add_argument("--skip-segment", action="store_true", help="overhead: the classifier cascade only")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} ({platform.machine()}), Python {platform.python_version()}")
    if args.history_rows:
        with tempfile.TemporaryDirectory() as tmp:
            results = history(args.db or f"sqlite:///{tmp}/history.db", args.history_rows)
        print(f"filled {args.history_rows:,} rows in {results.pop('fill_s'):.1f} s, opened again in "
              f"{results.pop('reopen_s'):.1f} s; pages of 50 (review queue: 20), best of 3 after a warm-up")
        print(f"| {'query':18s} | first page ms | deep page ms | rows first / deep |")
        print(f"|{'-' * 20}|---------------:|-------------:|------------------:|")
        for name, r in results.items():
            print(f"| {name:18s} | {r['first_page_ms']:13.1f} | {r['deep_page_ms']:12.1f} | "
                  f"{r['first_rows']:>8} / {r['deep_rows']:<6} |")
        for name, r in results.items():
            print(f"plan {name}: {r['plan']}")
        worst = max(max(r["first_page_ms"], r["deep_page_ms"]) for r in results.values())
        print(f"slowest page {worst:.1f} ms: {'meets' if worst < 200 else 'MISSES'} the 200 ms goal")
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
        return

    paths = list_images(synthetic(args.images) / "train_images")
    results = {"images": len(paths)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = fresh_runs(tmp / "runs")
        pass_share(runs["binary"], paths, DEFECT_SHARE)
        url = args.db or f"sqlite:///{tmp / 'inspections.db'}"
        config = PredictConfig(batch_size=16, workers=2, device="cpu")

        cascade = Cascade.from_runs(runs["binary"], runs["multiclass"], config)
        list(predict(paths[:16], cascade, config))  # warm-up
        start = time.perf_counter()
        n = sum(1 for _ in predict(paths, cascade, config))
        plain = (time.perf_counter() - start) / n
        with open_sink(url, batch=16) as sink:
            sink.start({"binary": cascade.binary, "multiclass": cascade.multiclass})
            start = time.perf_counter()
            list(sink.rows(predict(paths, cascade, config)))
            sink.flush()
            logged = (time.perf_counter() - start) / n
        results["cascade"] = {"predict_ms": 1000 * plain, "with_log_ms": 1000 * logged,
                              "log_ms": 1000 * sink.seconds / n, "log_share": sink.seconds / n / plain}
        results["record_many"] = record_many_share(f"sqlite:///{tmp / 'record_many.db'}" if args.db is None
                                                   else args.db, paths, synthetic(args.images), cascade, config)
        if args.skip_segment:
            _print_overhead(results)
            if args.out:
                args.out.write_text(json.dumps(results, indent=2))
            return

        outputs = PipelineOutputs(tmp / "p.csv", tmp / "s.csv")
        start = time.perf_counter()
        predict_pipeline(paths, runs["binary"], runs["multiclass"], runs["segment"], outputs, config)
        plain = (time.perf_counter() - start) / n
        with open_sink(url, batch=16) as sink:
            start = time.perf_counter()
            predict_pipeline(paths, runs["binary"], runs["multiclass"], runs["segment"], outputs, config, sink=sink)
            sink.flush()
            logged = (time.perf_counter() - start) / n
            regions = sum(len(sink.log.defects(e.id)) for e in sink.log.query(page_size=1000).entries)
        results["cascade_segment"] = {"predict_ms": 1000 * plain, "with_log_ms": 1000 * logged,
                                      "log_ms": 1000 * sink.seconds / n, "log_share": sink.seconds / n / plain,
                                      "regions_logged": regions}

    _print_overhead(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def _print_overhead(results: dict) -> None:
    for name in ("cascade", "cascade_segment"):
        if name in results:
            r = results[name]
            print(f"{name:16s} predict {r['predict_ms']:7.1f} ms/image, with --db {r['with_log_ms']:7.1f}; "
                  f"the log itself {r['log_ms']:.2f} ms/image = {100 * r['log_share']:.1f}% of the prediction")
    r = results["record_many"]
    print(f"record_many      cascade {r['cascade_ms']:7.1f} ms/image; regions + record_many (16 a batch, "
          f"{r['regions_per_image']:.1f} true regions/image) {r['log_ms']:.2f} ms/image = "
          f"{100 * r['log_share']:.1f}% of the cascade (goal < 5%)")
    print(f"record_many CPU  cascade {r['cascade_cpu_ms']:7.1f} CPU-ms/image; the log {r['log_cpu_ms']:.2f} "
          f"CPU-ms/image = {100 * r['log_cpu_share']:.1f}%")


if __name__ == "__main__":
    main()
