"""Prediction on several processes or machines: the images are shared out by rank, each rank streams its share
through the same engines as one process does, and one process merges the parts into exactly the files (and log
rows) one process would write.

- Sharding: every rank lists the images the same way (list_images: a folder sorted, files in the order given) and
  takes image i when i % world == rank. Round robin keeps the shares within one image of each other whatever
  the order of cheap and costly images.
- Parts: each rank writes its rows (JSON lines, with the four RLEs when segmenting), its overlays and, at the
  end, a status file into one temporary folder beside the predictions file (under torchrun on several machines
  that folder must be on storage every machine sees, at the same path). The merge interleaves the parts back
  into input order and writes predictions.csv, submission.csv and the overlays with the writers one process
  uses, each through a temporary renamed into place only when everything succeeded; the inspection log (only
  the merging process opens it) gets the rows after the files are complete. The folder is removed afterwards,
  and a killed run's is removed by the next write of the same predictions file (io.remove_stale_temporaries).
- Failure: a rank that raises records the image it was on; the others stop at their next image; the run fails
  with one line naming the rank and the image, no output file is written and no row is logged. A rank that
  dies outright is named from the marker it keeps of the image it is on. Unreadable images are skipped and
  reported, as in one process.

Two launchers, one merge: torchrun (`torchrun --nproc_per_node P [--nnodes N ...] -m steelinspect predict ...`:
the ranks talk over gloo, rank 0 merges) and `processes` (P worker processes spawned here, this process merges).
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import shutil
import signal
import socket
import threading
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import numpy as np

from steelinspect import rle
from steelinspect.data.images import list_images
from steelinspect.errors import ConfigError, Problem, SteelInspectError
from steelinspect.infer import testhooks
from steelinspect.infer.cascade import PREDICTION_COLUMNS, PredictConfig, PredictionWriter, PredictStats
from steelinspect.infer.segment_predict import (
    SEGMENT_COLUMNS,
    PipelineOutputs,
    PipelineStats,
    SegmentOptions,
    SegmentResult,
    overlay_name,
    overlays_folder,
)
from steelinspect.infer.submission import SubmissionWriter
from steelinspect.io import read_json, scratch_dir, write_json

# How long a rank waits for the others at a meeting point: the slowest share plus the merge must fit in it.
# A rank that dies is noticed at once (torchrun stops the others); only a hung one is waited for this long.
MEET_TIMEOUT = timedelta(hours=12)
DEATH_GRACE = 2.0  # seconds a rank that lost a peer waits for the peer's process to be gone before naming it


class ShardError(SteelInspectError):
    """A sharded prediction failed. `report` is False on the ranks that only learnt of another rank's failure:
    they exit quietly, so a run fails with one line."""

    def __init__(self, problem: str, report: bool = True):
        super().__init__(problem)
        self.report = report


@dataclass
class ShardJob:
    """What to predict and where the outputs go: the same inputs as one-process prediction."""

    images: Any  # a folder, a file, or a list of them
    binary: Path
    multiclass: Path
    outputs: PipelineOutputs
    config: PredictConfig = field(default_factory=PredictConfig)
    segment: Path | None = None
    options: SegmentOptions = field(default_factory=SegmentOptions)

    @property
    def columns(self) -> list[str]:
        return [*PREDICTION_COLUMNS, *SEGMENT_COLUMNS] if self.segment is not None else PREDICTION_COLUMNS

    def validate(self) -> None:
        self.config.validate()
        self.options.validate()
        if self.segment is None and (self.outputs.submission or self.outputs.overlays or self.options.tta):
            raise ConfigError("--submission, --overlays and --tta need a segment run (--segment RUN_DIR)")


@dataclass
class ShardRun:
    """What a sharded prediction returns on each rank: the merged stats and the log sink on the merging
    process (`main`), None on the others."""

    stats: PredictStats | None
    sink: Any = None
    main: bool = True


def share(n: int, rank: int, world: int) -> range:
    """The indices (into the one listing every rank makes) of the images rank `rank` of `world` predicts."""
    return range(rank, n, world)


def torchrun_rank() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def launched_by_torchrun() -> bool:
    return torchrun_rank()[1] > 1


def cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def predict_sharded(
    job: ShardJob,
    processes: int = 1,
    threads: int | None = None,
    open_sink: Callable[[], ContextManager] | None = None,
    on_image: Callable[[int], None] | None = None,
) -> ShardRun:
    """Predict `job` under torchrun (when launched by it; `processes` must then be 1) or on `processes` worker
    processes spawned here. Each process runs `threads` model threads (default: this machine's cores divided
    among its processes). `open_sink()` opens the inspection log's sink (only in the merging process); `on_image`
    counts images (under torchrun: rank 0's own; with `processes`: every worker's). Raises ShardError when a
    rank fails, SteelInspectError as one process would for a bad option, run or output."""
    check_processes(processes)
    if launched_by_torchrun():
        return _torchrun(job, threads, open_sink, on_image)
    return _spawned(_with_threads(job, threads, processes), processes, open_sink, on_image)


def check_processes(processes: int) -> None:
    """ConfigError unless `processes` suits how this process was launched."""
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, got {processes}")
    if processes != 1 and launched_by_torchrun():
        raise ConfigError("--processes is for one machine without torchrun; under torchrun the ranks are the "
                          "processes (--nproc_per_node)")


def _with_threads(job: ShardJob, threads: int | None, per_machine: int) -> ShardJob:
    if threads is None:
        threads = job.config.threads if job.config.threads is not None else max(1, cpu_cores() // max(1, per_machine))
    job = replace(job, config=replace(job.config, threads=threads))
    job.validate()
    return job


# ---- one rank's share -----------------------------------------------------------------------------------------

def _part(parts: Path, rank: int, kind: str) -> Path:
    return parts / f"rank-{rank}.{kind}"


FAILED = "failed"  # a rank that fails creates parts/failed; the others stop at their next image


class _PeerFailed(Exception):
    """Another rank failed: this one stops (its status says so; it is not the failure to report)."""


class _Marker:
    """The image a rank is on, in a small file beside its parts, so that a rank that dies outright can be named
    with it. Rewritten in place (no rename) before each image: a few microseconds."""

    def __init__(self, parts: Path, rank: int):
        self.parts, self.rank = parts, rank
        self.image: str | None = None
        self._fh = _part(parts, rank, "at").open("w")
        self._write()

    def at(self, image: str | None) -> None:
        self.image = image
        self._write()
        if (self.parts / FAILED).exists():
            raise _PeerFailed()

    def _write(self) -> None:
        self._fh.seek(0)
        self._fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "image": self.image}))
        self._fh.truncate()
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def run_share(job: ShardJob, rank: int, world: int, parts: Path,
              on_image: Callable[[int], None] | None = None, local_rank: int | None = None) -> dict:
    """Predict rank `rank`'s share of `job` into `parts` and write its status file; returns the loaded runs by
    role (what the inspection log records of them). On an error the status file records it with the image the
    rank was on, `parts/failed` tells the other ranks to stop, and the error is raised again. `local_rank` (this
    rank's number on its machine; default `rank`) picks its GPU when there are several."""
    job = replace(job, config=replace(job.config, device=rank_device(job.config.device,
                                                                     rank if local_rank is None else local_rank)))
    marker = _Marker(parts, rank)
    started = False  # until the engines are loaded a failure is the setup's (the same on every rank), not an image's
    try:
        paths = list_images(job.images)
        mine = [(i, paths[i]) for i in share(len(paths), rank, world)]
        engines = _load(job)
        marker.at(mine[0][1].name if mine else None)
        started = True
        stats = _predict(job, engines, mine, rank, parts, marker, on_image)
    except (_PeerFailed, _Stopped, KeyboardInterrupt):
        _write_status(parts, rank, {"ok": False, "stopped": True})
        raise
    except BaseException as exc:
        _write_status(parts, rank, {"ok": False, "stopped": False, "image": marker.image if started else None,
                                    "error": str(exc), "type": type(exc).__name__,
                                    "library": isinstance(exc, SteelInspectError)})
        raise
    finally:
        marker.close()
    write_json(_part(parts, rank, "json"), {"ok": True, "stats": _stats_dict(stats)})
    return engines[-1]


def _write_status(parts: Path, rank: int, status: dict) -> None:
    try:
        write_json(_part(parts, rank, "json"), status)
        if not status.get("stopped"):
            (parts / FAILED).touch()
    except OSError:  # the parts folder is gone: the run is being taken down already
        pass


def rank_device(device: str, local_rank: int) -> str:
    """The device of the rank numbered `local_rank` on its machine: with auto or cuda and several GPUs, one each
    (round robin); any other choice as given."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return device


def _load(job: ShardJob) -> tuple:
    """The engines of one rank, and the runs by role."""
    if job.segment is None:
        from steelinspect.infer.cascade import Cascade

        cascade = Cascade.from_runs(job.binary, job.multiclass, job.config)
        return cascade, None, {"binary": cascade.binary, "multiclass": cascade.multiclass}
    from steelinspect.infer.segment_predict import load_pipeline, pipeline_runs

    cascade, step = load_pipeline(job.binary, job.multiclass, job.segment, job.config, job.options)
    return cascade, step, pipeline_runs(cascade, step)


def _predict(job: ShardJob, engines: tuple, mine: list[tuple[int, Path]], rank: int, parts: Path, marker: _Marker,
             on_image) -> PredictStats:
    from steelinspect.draw.overlay import save_rgb
    from steelinspect.infer.cascade import predict
    from steelinspect.infer.segment_predict import iter_pipeline, overlay_image, pipeline_notes

    cascade, step, _ = engines
    paths = [p for _, p in mine]
    overlays = _part(parts, rank, "overlays") if job.outputs.overlays else None
    if overlays is not None:
        overlays.mkdir()
    if step is None:
        stats = PredictStats()
        results = ((row, None, None) for row in predict(paths, cascade, job.config, stats, on_image))
    else:
        stats = PipelineStats(notes=pipeline_notes(cascade, step))
        results = iter_pipeline(paths, cascade, step, job.config, stats, on_image, keep_originals=overlays is not None)
    todo = deque(mine)  # the share in order: rows come in this order, unreadable images left out
    skipped: list[int] = []
    with _part(parts, rank, "jsonl").open("w") as fh:
        for position, (row, result, original) in enumerate(results):
            while str(todo[0][1]) != row["path"]:  # the loader skipped it: unreadable (one problem each, in order)
                skipped.append(todo.popleft()[0])
            index = todo.popleft()[0]
            marker.at(row["ImageId"])
            testhooks.before_image(rank, position, len(mine))
            record: dict = {"i": index, "row": row}
            if result is not None:
                record["rles"] = [rle.encode(m) for m in result.masks]
                if overlays is not None:
                    save_rgb(overlays / f"{index}.png", overlay_image(original, result.masks))
            fh.write(json.dumps(record, default=_plain) + "\n")
            marker.at(todo[0][1].name if todo else None)  # a failure from here on is in the next image's batch
    skipped += [i for i, _ in todo]
    stats.skipped = [(i, asdict(p)) for i, p in zip(skipped, stats.skipped)]
    return stats


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _stats_dict(stats: PredictStats) -> dict:
    return {"images": stats.images, "defects": stats.defects, "seconds": stats.seconds, "skipped": stats.skipped,
            "notes": stats.notes, "masks": getattr(stats, "masks", None)}


# ---- the merge ------------------------------------------------------------------------------------------------

def merge_parts(job: ShardJob, parts: Path, world: int, overlays: Path | None = None, sink=None,
                runs: dict | None = None) -> PredictStats:
    """Write the outputs one process would write from the parts of `world` ranks that all succeeded: predictions
    and submission through temporaries renamed when complete, the overlays moved into `overlays` (the open
    temporary overlays folder), then the log rows into `sink` (started with `runs`), all in input order."""
    statuses = [read_json(_part(parts, r, "json")) for r in range(world)]
    stats = PipelineStats() if job.segment is not None else PredictStats()
    skipped = []
    for status in statuses:
        part = status["stats"]
        stats.images += part["images"]
        stats.defects += part["defects"]
        skipped += [tuple(s) for s in part["skipped"]]
        stats.notes += [n for n in part["notes"] if n not in stats.notes]
        for c, n in (part["masks"] or {}).items():
            stats.masks[int(c)] += n
    stats.skipped = [Problem(**p) for _, p in sorted(skipped, key=lambda s: s[0])]
    with ExitStack() as stack:
        out = stack.enter_context(PredictionWriter(job.outputs.predictions, job.columns))
        sub = stack.enter_context(SubmissionWriter(job.outputs.submission)) if job.outputs.submission else None
        for rank, record in _merged(parts, world):
            row = record["row"]
            out.add(row)
            if sub is not None:
                sub.add(row["ImageId"], record["rles"])
            if overlays is not None:
                shutil.move(_part(parts, rank, "overlays") / f"{record['i']}.png", overlays / overlay_name(row["ImageId"]))
        if sink is not None:  # after the files are complete: a failure writing them logs nothing
            sink.start(runs or {})
            for _, record in _merged(parts, world):
                if job.segment is None:
                    sink.add(record["row"])
                else:
                    sink.add(record["row"], SegmentResult(rle.build_mask(record["rles"]), []))
            getattr(sink, "flush", lambda: None)()
            add_problem = getattr(sink, "add_problem", None)  # unreadable files, as one process records them
            for problem in stats.skipped if add_problem is not None else ():
                add_problem(problem)
    return stats


def _merged(parts: Path, world: int) -> Iterator[tuple[int, dict]]:
    """(rank, record) of every rank's part, in input order (each part is in input order already)."""
    def records(rank: int) -> Iterator[tuple[int, int, dict]]:
        with _part(parts, rank, "jsonl").open() as fh:
            for line in fh:
                record = json.loads(line)
                yield record["i"], rank, record

    for _, rank, record in heapq.merge(*(records(r) for r in range(world))):
        yield rank, record


# ---- failures -------------------------------------------------------------------------------------------------

def failure_message(parts: Path | None, world: int, me: int | None = None,
                    exitcodes: dict[int, int] | None = None) -> str:
    """One line saying which rank failed and on which image, from the parts folder: a rank that raised (its
    status file), else one that died (no status; its process gone, or a non-zero exit code), else one that
    stopped without a result."""
    if parts is None:
        return "a rank stopped before the prediction started"
    exitcodes = exitcodes or {}
    missing = []
    for rank in range(world):
        status_file = _part(parts, rank, "json")
        try:
            status = read_json(status_file)
        except (OSError, ValueError):
            if rank != me:
                missing.append(rank)
            continue
        if status.get("ok") or status.get("stopped"):
            continue
        if status["image"] is None and status["library"]:
            return status["error"]  # the setup failed (a bad run, an option): the error one process would give
        on = f"on image {status['image']}" if status["image"] else "before its first image"
        error = status["error"] if status["library"] else f"{status['type']}: {status['error']}"
        return f"rank {rank} failed {on}: {' '.join(error.split())}"
    # With exit codes (spawned workers) the dead are known; under torchrun only those on this machine are.
    dead = ([r for r in missing if exitcodes.get(r) not in (None, 0)] if exitcodes else
            _dead_after_grace(parts, missing))
    for rank in dead or missing:
        marker = _read_marker(parts, rank)
        on = f"on image {marker['image']}" if marker.get("image") else "before its first image"
        code = exitcodes.get(rank)
        how = ("was killed by signal " + str(-code) if code is not None and code < 0 else
               f"exited with code {code}" if code else "died" if dead else "stopped without a result")
        return f"rank {rank} {how} {on}"
    return "stopped from outside (SIGTERM) before every rank finished"


def _read_marker(parts: Path, rank: int) -> dict:
    try:
        return json.loads(_part(parts, rank, "at").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _dead_after_grace(parts: Path, ranks: list[int], grace: float = DEATH_GRACE) -> list[int]:
    """The ranks of `ranks` whose process is gone, waiting up to `grace` seconds for one to be: a killed process
    closes its sockets (which is how its peers learn of it) a moment before the kernel marks it dead."""
    deadline = time.monotonic() + grace
    while True:
        dead = [r for r in ranks if _dead(parts, r)]
        if dead or not ranks or time.monotonic() >= deadline:
            return dead
        time.sleep(0.05)


def _dead(parts: Path, rank: int) -> bool:
    """Whether rank `rank`'s process is known to be gone (only a process on this machine can be checked)."""
    from steelinspect.io import _process_exists

    marker = _read_marker(parts, rank)
    if marker.get("host") != socket.gethostname() or not isinstance(marker.get("pid"), int):
        return False
    pid = marker["pid"]
    if not _process_exists(pid):
        return True
    try:  # a killed process stays a zombie until its parent (torchrun's agent) reaps it
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


# ---- launcher 1: worker processes spawned here ----------------------------------------------------------------

def _spawned(job: ShardJob, processes: int, open_sink, on_image) -> ShardRun:
    start = time.perf_counter()
    with ExitStack() as stack:
        # Everything that can refuse the run does so before any worker starts: the overlays folder, the log.
        parts = stack.enter_context(scratch_dir(job.outputs.predictions))
        overlays = stack.enter_context(overlays_folder(job.outputs.overlays)) if job.outputs.overlays else None
        sink = stack.enter_context(open_sink()) if open_sink else None
        runs = _described_runs(job) if sink is not None else None
        context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no fork of torch's threads
        counter = context.Value("q", 0)
        workers = [context.Process(target=_worker, args=(job, rank, processes, parts, counter), daemon=True,
                                   name=f"steelinspect-rank-{rank}") for rank in range(processes)]
        try:
            for worker in workers:
                worker.start()
            _watch(workers, counter, on_image, parts)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
            for worker in workers:
                worker.join()
        stats = merge_parts(job, parts, processes, overlays, sink, runs)
    stats.seconds = time.perf_counter() - start
    return ShardRun(stats, sink, main=True)


def _described_runs(job: ShardJob) -> dict:
    """The runs by role, for the log (loaded here: the workers hold theirs in other processes)."""
    from steelinspect.runs.ensemble import load_model

    roles = {"binary": job.binary, "multiclass": job.multiclass}
    if job.segment is not None:
        roles["segment"] = job.segment
    return {role: load_model(path) for role, path in roles.items()}


def _worker(job: ShardJob, rank: int, world: int, parts: Path, counter) -> None:
    """A spawned worker: its share, then exit 0; exit 1 on an error (the status file says which)."""
    import sys

    def advance(n: int = 1) -> None:
        with counter.get_lock():
            counter.value += n

    try:
        run_share(job, rank, world, parts, on_image=advance)
    except BaseException:
        sys.exit(1)


def _watch(workers: list, counter, on_image, parts: Path) -> None:
    """Wait for the workers, counting their images; ShardError as soon as one fails or dies."""
    from multiprocessing.connection import wait

    seen = 0

    def count() -> None:
        nonlocal seen
        now = counter.value
        if on_image is not None and now > seen:
            on_image(now - seen)
        seen = now

    while True:
        wait([w.sentinel for w in workers if w.exitcode is None], timeout=0.2)
        codes = {rank: w.exitcode for rank, w in enumerate(workers)}
        count()  # after the exit codes: a worker that has exited has counted all its images
        if any(code not in (None, 0) for code in codes.values()):
            for worker in workers:  # stop the others now rather than at their next image
                if worker.is_alive():
                    worker.terminate()
            for worker in workers:
                worker.join()
            failed = {r: c for r, c in codes.items() if c not in (None, 0)}
            raise ShardError(failure_message(parts, len(workers), exitcodes=failed))
        if all(code == 0 for code in codes.values()):
            return


# ---- launcher 2: torchrun -------------------------------------------------------------------------------------

class _Stopped(BaseException):
    """SIGTERM: torchrun stops the other ranks when one dies."""


class _PeerLost(Exception):
    """A meeting with the other ranks failed: one of them is gone."""


def _meet(objects: list, src: int | None = None) -> list:
    """all_gather_object (src None) or broadcast_object_list from `src`; _PeerLost when a rank is gone."""
    import torch.distributed as dist

    try:
        if src is None:
            out = [None] * dist.get_world_size()
            dist.all_gather_object(out, objects[0])
            return out
        dist.broadcast_object_list(objects, src=src)
        return objects
    except RuntimeError as exc:  # gloo: "Connection closed by peer", a timeout
        raise _PeerLost(str(exc)) from None


class _Alarm:
    """SIGTERM (torchrun stopping the ranks when one has died or failed) raises _Stopped until disarmed. Once this
    rank is failing it is disarmed for good: a SIGTERM during the clean-up, or before the one line is printed,
    must not cut them short (torchrun sends SIGKILL 30 s later, should the process not end)."""

    def __init__(self):
        self.armed = threading.current_thread() is threading.main_thread()  # only the main thread gets signals
        self.previous = signal.signal(signal.SIGTERM, self._raise) if self.armed else None

    def _raise(self, signum, frame):
        if self.armed:
            self.disarm()
            raise _Stopped()

    def disarm(self) -> None:
        if self.armed:
            self.armed = False
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def restore(self) -> None:
        """After a run that succeeded: the handler there was before."""
        if self.armed:
            self.armed = False
            signal.signal(signal.SIGTERM, self.previous)


def _torchrun(job: ShardJob, threads: int | None, open_sink, on_image) -> ShardRun:
    import torch.distributed as dist

    rank, world = torchrun_rank()
    start = time.perf_counter()
    # gloo whatever the device: the ranks exchange only a few small objects; the parts travel through files.
    dist.init_process_group("gloo", timeout=MEET_TIMEOUT)
    parts = None
    alarm = _Alarm()
    try:
        with ExitStack() as stack:
            try:
                # 1. every rank checks the job; rank 0 also makes the parts folder and opens every output. The
                # ranks meet before any predicts: a refusal anywhere stops them all, and rank 0 alone says why.
                mine, failure = None, None
                try:
                    job = _with_threads(job, threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
                    if rank == 0:
                        parts = stack.enter_context(scratch_dir(job.outputs.predictions))
                        overlays = (stack.enter_context(overlays_folder(job.outputs.overlays))
                                    if job.outputs.overlays else None)
                        sink = stack.enter_context(open_sink()) if open_sink else None
                        mine = str(parts)
                except BaseException as exc:
                    failure = exc
                setups = _meet([(mine, None if failure is None else (str(failure) or type(failure).__name__))])
                errors = [error for _, error in setups if error is not None]
                if failure is not None and rank == 0:
                    raise failure
                if errors:
                    raise ShardError(errors[0], report=rank == 0)
                parts = Path(setups[0][0])
                # 2. every rank predicts its share; the ranks meet once all are done (or stopped).
                try:
                    runs = run_share(job, rank, world, parts, on_image=on_image,
                                     local_rank=int(os.environ.get("LOCAL_RANK", rank)))
                    ok = True
                except Exception:  # recorded in the status file
                    ok = False
                if not all(_meet([ok])):
                    raise ShardError(failure_message(parts, world, rank), report=rank == 0)
                # 3. rank 0 merges; the others wait for its word, so that every rank exits alike.
                merged = [None]
                if rank == 0:
                    try:
                        stats = merge_parts(job, parts, world, overlays, sink, runs)
                    except BaseException as exc:
                        merged[0] = str(exc) or type(exc).__name__
                        _meet(merged, src=0)
                        raise
                merged = _meet(merged, src=0)
                if merged[0] is not None:
                    raise ShardError(f"rank 0 failed to merge the parts: {merged[0]}", report=False)
            except (_PeerLost, _Stopped):
                alarm.disarm()
                report = rank == 0 or (parts is not None and _dead(parts, 0))
                raise ShardError(failure_message(parts, world, rank), report=report) from None
            except BaseException:
                alarm.disarm()
                raise
        alarm.restore()
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return ShardRun(None, None, main=False)
    stats.seconds = time.perf_counter() - start
    return ShardRun(stats, sink, main=True)
