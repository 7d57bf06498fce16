"""Inspection log overhead: what `predict --db` adds per image to the prediction itself, measured in one run on
the same full-size 1600x256 images, for the classifier cascade alone and for cascade + segmenter.

    python bench/inspect_log.py --images 32 [--db sqlite:////tmp/x.db | postgresql://...] [--out results.json]
    python bench/inspect_log.py --history-rows 1000000 [--db URL]      # the History queries only

Models are freshly initialised default architectures (bench/inference.py's fresh_runs; speed does not depend on
the weights) with step 1 passing 53% of the images, as in the real training set; so about half the images get
masks, and each region is stored with its own RLE. The log's own time (regions + database writes, batches of
16 per transaction) is timed inside the sink, so the ratio does not depend on run-to-run noise of the models.
Goal (issue 12): under 5% of the cascade's time.

--history-rows N fills a new log with N inspections (bulk inserts: 1000 coils, a frame a second, 53% defective,
classes drawn with the real set's frequencies, 10% reviewed) and times the first page (50 rows) and the 20th
page of the History queries and their counts. Goal (issue 12): a page in under 200 ms on SQLite at 1,000,000.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic  # noqa: E402
from inference import DEFECT_SHARE, fresh_runs, pass_share  # noqa: E402

from steelinspect.data.images import list_images  # noqa: E402
from steelinspect.infer.cascade import Cascade, PredictConfig, predict  # noqa: E402
from steelinspect.infer.segment_predict import PipelineOutputs, predict_pipeline  # noqa: E402
from steelinspect.inspect_log import LogFilter, open_log  # noqa: E402
from steelinspect.inspect_log.models import Inspection, InspectionClass, Review  # noqa: E402
from steelinspect.inspect_log.sink import open_sink  # noqa: E402

CLASS_SHARE = {1: 0.13, 2: 0.04, 3: 0.73, 4: 0.11}  # share of defect images per class in the real training set


def fill(log, rows: int, chunk: int = 20_000) -> None:
    from datetime import datetime, timedelta, timezone

    rng = random.Random(0)
    set_id = log.model_set_id({"bench": True})
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for first in range(1, rows + 1, chunk):
        ids = range(first, min(first + chunk, rows + 1))
        inspections, classes, reviews = [], [], []
        for i in ids:
            p = rng.random()
            chosen = sorted({c for c in CLASS_SHARE if rng.random() < CLASS_SHARE[c]} or {3}) if p >= 0.47 else []
            inspections.append({"id": i, "image_id": f"{i:08d}.jpg", "path": None, "coil": f"C{i % 1000:04d}",
                                "frame": i // 1000, "inspected_at": t0 + timedelta(seconds=i), "model_set_id": set_id,
                                "p_defect": p, "p_class_1": 0.1, "p_class_2": 0.1, "p_class_3": 0.1,
                                "p_class_4": 0.1, "has_defect": bool(chosen),
                                "classes": " ".join(map(str, chosen)), "band": log.bands.band(p)})
            classes += [{"inspection_id": i, "class_id": c} for c in chosen]
            if rng.random() < 0.1:
                reviews.append({"inspection_id": i, "defect_id": None, "reviewer": "bench", "verdict": "confirm",
                                "reviewed_at": t0 + timedelta(seconds=i + 60), "classes": None, "note": None})
        with log.engine.begin() as conn:
            conn.execute(Inspection.__table__.insert(), inspections)
            if classes:
                conn.execute(InspectionClass.__table__.insert(), classes)
            if reviews:
                conn.execute(Review.__table__.insert(), reviews)


def history(url: str, rows: int) -> dict:
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    results = {}
    with open_log(url) as log:
        start = time.perf_counter()
        fill(log, rows)
        results["fill_s"] = time.perf_counter() - start
        with log.engine.connect() as conn:  # fresh statistics for the planner, as a live database would have
            conn.exec_driver_sql("ANALYZE")
        filters = {
            "all": LogFilter(), "band REVIEW": LogFilter(band="REVIEW"), "coil": LogFilter(coil="C0417"),
            "class 2 (rare)": LogFilter(class_id=2), "not reviewed": LogFilter(reviewed=False),
            "reviewed": LogFilter(reviewed=True),
            "one day, a month back": LogFilter(since=t0 + timedelta(seconds=rows // 2),
                                               until=t0 + timedelta(seconds=rows // 2 + 86_400)),
            "NG + class 4 + coil": LogFilter(band="NG", class_id=4, coil="C0417"),
        }
        for name, filt in filters.items():
            log.query(filt, page_size=50)  # warm the page cache
            start = time.perf_counter()
            page = log.query(filt, page_size=50)
            first = time.perf_counter() - start
            after = page.next_after
            for _ in range(18):
                if after is None:
                    break
                after = log.query(filt, page_size=50, after=after).next_after
            twentieth = None  # fewer than 20 pages
            if after is not None:
                start = time.perf_counter()
                log.query(filt, page_size=50, after=after)
                twentieth = time.perf_counter() - start
            start = time.perf_counter()
            count = log.count(filt)
            counted = time.perf_counter() - start
            results[name] = {"first_page_ms": 1000 * first, "page_20_ms": None if twentieth is None else 1000 * twentieth,
                             "count_ms": 1000 * counted, "rows": count}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file in a temp folder)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--history-rows", type=int, default=0, help="time the History queries over this many rows")
    args = parser.parse_args()
    if args.history_rows:
        with tempfile.TemporaryDirectory() as tmp:
            results = history(args.db or f"sqlite:///{tmp}/history.db", args.history_rows)
        print(f"filled {args.history_rows} rows in {results.pop('fill_s'):.1f} s")
        for name, r in results.items():
            page_20 = "      -" if r["page_20_ms"] is None else f"{r['page_20_ms']:7.1f}"
            print(f"{name:24s} page 1 {r['first_page_ms']:7.1f} ms, page 20 {page_20} ms, "
                  f"count {r['count_ms']:7.1f} ms ({r['rows']} rows)")
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

    for name in ("cascade", "cascade_segment"):
        r = results[name]
        print(f"{name:16s} predict {r['predict_ms']:7.1f} ms/image, with --db {r['with_log_ms']:7.1f}; "
              f"the log itself {r['log_ms']:.2f} ms/image = {100 * r['log_share']:.1f}% of the prediction")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
