"""Prediction results into the inspection log, as infer produces them (a PipelineSink; the cascade's rows go
through `add(row)` directly). Rows are written in batches of `batch` per transaction, and whatever is buffered
is written on close, also when prediction stops on an error: an image that was inspected is logged. Images that
could not be inspected go to the problem table as they are found (`add_problem`, infer's on_problem)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from steelinspect.errors import Problem
from steelinspect.inspect_log.bands import Bands, BandSet
from steelinspect.inspect_log.regions import regions_from_masks
from steelinspect.inspect_log.store import InspectionLog, open_log
from steelinspect.runs.bands import stale_notes
from steelinspect.runs.store import LoadedRun


def describe_run(run: LoadedRun) -> dict:
    """What the log keeps of a run: enough to know exactly which weights and decision parameters decided."""
    described = {"run_dir": str(Path(run.run_dir).resolve()), "head": run.head, "arch": run.arch,
                 "weights_id": run.weights_id, "thresholds": list(run.thresholds)}
    if run.postprocess is not None:
        described["postprocess"] = run.postprocess
    if run.onnx_export:
        described["onnx_sha256"] = run.onnx_export.get("sha256")
    members = getattr(run, "members", None)  # an ensemble (runs/ensemble.py): each member as it is described alone
    if members:
        described["members"] = [describe_run(m) for m in members]
    return described


class LogSink:
    """Collects prediction rows (and the segmenter's masks) and records them in `log`. With `coil`, every image
    is a frame of that coil, numbered from `first_frame` in the order the images are predicted."""

    def __init__(self, log: InspectionLog, coil: str | None = None, first_frame: int = 0, batch: int = 16):
        self.log, self.coil, self.batch = log, coil, max(1, batch)
        self.frame = first_frame
        self.models: dict = {}
        self.recorded = 0
        self.problems = 0
        self.seconds = 0.0  # time spent logging (regions + database), to compare with the prediction's
        self.notes: list[str] = []  # e.g. bands tuned for other weights than the runs now hold
        self._pending: list[tuple] = []

    def start(self, runs: dict[str, LoadedRun]) -> None:
        self.flush()  # rows already buffered belong to the previous models
        self.models = {role: describe_run(run) for role, run in runs.items()}
        self.notes += [n for n in stale_notes({r: runs[r] for r in ("binary", "multiclass") if r in runs})
                       if n not in self.notes]

    def add(self, row: dict, result=None) -> None:
        start = time.perf_counter()
        regions = regions_from_masks(result.masks) if result is not None else []
        frame = None
        if self.coil is not None:
            frame, self.frame = self.frame, self.frame + 1
        self._pending.append((row, regions, self.coil, frame, row.get("path"), None))
        self.seconds += time.perf_counter() - start
        if len(self._pending) >= self.batch:
            self.flush()

    def add_problem(self, problem: Problem, source: str = "predict") -> None:
        """Record a file that could not be inspected, with its size and mtime when it is still there (a changed
        file is then told apart from the one that failed)."""
        size = mtime_ns = None
        try:
            st = Path(problem.file).stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except (OSError, ValueError):
            pass
        self.log.record_problem(problem.file, problem.problem, source, size, mtime_ns)
        self.problems += 1

    def flush(self) -> None:
        if not self._pending:
            return
        start = time.perf_counter()
        pending, self._pending = self._pending, []
        self.log.record_many(pending, self.models)
        self.recorded += len(pending)
        self.seconds += time.perf_counter() - start

    def rows(self, rows: Iterable[dict]) -> Iterator[dict]:
        """Pass rows through, recording each (for the cascade's row stream)."""
        for row in rows:
            self.add(row)
            yield row

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "LogSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def open_sink(url: str, bands: Bands | BandSet | None = None, coil: str | None = None,
              batch: int = 16) -> Iterator[LogSink]:
    """Open the log at `url` and yield a sink into it; buffered rows are written and the log closed on exit."""
    log = open_log(url, bands)
    try:
        with LogSink(log, coil=coil, batch=batch) as sink:
            yield sink
    finally:
        log.close()
