"""The inspection station's queries (what /api/log/* runs) over a large log: summary, review queue, coil list, one
coil's frames and its CSV and HTML reports.

    python bench/station_api.py --rows 200000 [--db URL] [--out results.json]

The log is filled as bench/inspect_log.py --history-rows fills it (1000 coils, a frame a second, 53% defective, 10%
reviewed), with the REVIEW band's uncertainty set as the bands compute it. Each query is timed once warm.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from inspect_log import fill  # noqa: E402

from steelinspect.inspect_log import LogFilter, open_log  # noqa: E402
from steelinspect.inspect_log.coil_report import csv_text, html_text  # noqa: E402
from steelinspect.inspect_log.coils import coil_frames, coils  # noqa: E402


def timed(function, *args) -> tuple[float, object]:
    function(*args)  # warm
    start = time.perf_counter()
    result = function(*args)
    return 1000 * (time.perf_counter() - start), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file in a temp folder)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/station.db"
        with open_log(url) as log:
            fill(log, args.rows)
            t1, t2 = log.bands.t1, log.bands.t2
            half = (t2 - t1) / 2
            with log.engine.begin() as conn:
                conn.exec_driver_sql(f"UPDATE inspection SET uncertainty = 1 - abs(p_defect - {t1 + half}) / {half} "
                                     "WHERE band = 'REVIEW'")
                conn.exec_driver_sql("ANALYZE")
            results = {"rows": args.rows}

            def summary():
                return log.band_counts(), log.count(LogFilter(band="REVIEW", reviewed=False))

            results["summary_ms"], _ = timed(summary)
            results["review_queue_20_ms"], queue = timed(log.review_queue, 20)
            assert all(a.uncertainty >= b.uncertainty for a, b in zip(queue, queue[1:]))
            results["coils_100_ms"], _ = timed(coils, log, 100)
            results["coil_frames_ms"], frames = timed(coil_frames, log, "C0417")
            results["coil_frames"] = len(frames)
            results["coil_csv_ms"], _ = timed(csv_text, frames)
            results["coil_html_ms"], page = timed(html_text, "C0417", frames)
            results["coil_html_kb"] = len(page) / 1024
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
