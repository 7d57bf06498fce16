"""Inspection log overhead: what `predict --db` adds per image to the prediction itself, measured in one run on
the same full-size 1600x256 images, for the classifier cascade alone and for cascade + segmenter.

    python bench/inspect_log.py --images 32 [--db sqlite:////tmp/x.db | postgresql://...] [--out results.json]

Models are freshly initialised default architectures (bench/inference.py's fresh_runs; speed does not depend on
the weights) with step 1 passing 53% of the images, as in the real training set; so about half the images get
masks, and each region is stored with its own RLE. The log's own time (regions + database writes, batches of
16 per transaction) is timed inside the sink, so the ratio does not depend on run-to-run noise of the models.
Goal (issue 12): under 5% of the cascade's time.
"""

from __future__ import annotations

import argparse
import json
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
from steelinspect.inspect_log.sink import open_sink  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file in a temp folder)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

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
