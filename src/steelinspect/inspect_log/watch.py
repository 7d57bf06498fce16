"""Follow a folder a camera system writes into: every new image inspected once, in (coil, frame) order, into the
inspection log.

    with open_log("sqlite:///runs/inspections.db") as log:
        stats = watch(log, "/cam/out", WatchConfig(binary="runs/binary", multiclass="runs/multiclass"))

Each poll walks the folder (recursively; hidden files and folders, and names without an image extension, are
not looked at) and takes a file only when:
- the log has no inspection with its path, and no problem recorded for it at the same size and mtime (a file
  that changed is tried again). The log is asked when a path is first seen and again just before it is
  inspected, so a restart, or a second writer on the same log, never inspects a file twice;
- its size and mtime have not changed for `settle` seconds (two looks at least `settle` apart);
- it is whole as far as its format tells: a JPEG ends with its EOI marker, a PNG with its IEND chunk (other
  formats: the settle time only). A file still incomplete `give_up` seconds after it was last modified is
  logged as a problem.
The files taken in one poll are inspected in (coil, frame) order (coils/frames: naming.py), in batches; each
batch's rows are committed in one transaction, so a process killed mid-batch re-inspects only that batch's files
on restart. A file that cannot be inspected (not an image, truncated, over the pixel limit, a name without a
coil) goes to the problem table with the message, and the watcher goes on. `stop` (a threading.Event) ends the
loop after the current batch; `max_polls` after that many polls; `once` when nothing is left pending.

Paths are stored absolute (the watched folder resolved), so the folder may be named differently on restart.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from steelinspect.data.images import is_image_file
from steelinspect.errors import ConfigError, Problem
from steelinspect.infer.cascade import Cascade
from steelinspect.infer.config import PredictConfig
from steelinspect.infer.engines import make_engine
from steelinspect.infer.loader import iter_batches
from steelinspect.infer.segment_predict import SegmentOptions, SegmentStep
from steelinspect.inspect_log.naming import CoilNaming, FrameName, NamingError, flat_image_id, natural_key
from steelinspect.inspect_log.regions import regions_from_masks
from steelinspect.inspect_log.sink import describe_run
from steelinspect.inspect_log.store import InspectionLog
from steelinspect.runs.ensemble import load_model

SOURCE = "watch"  # problem.source of the watcher's problems
JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"  # the IEND chunk's type and its (fixed) CRC


@dataclass
class WatchConfig:
    binary: str | Path
    multiclass: str | Path
    segment: str | Path | None = None
    predict: PredictConfig = field(default_factory=PredictConfig)
    segment_options: SegmentOptions = field(default_factory=SegmentOptions)
    coil_pattern: str | None = None  # regex with (?P<coil>...) and optionally (?P<frame>\d+); None: the layout
    poll: float = 1.0  # seconds between two looks at the folder
    settle: float = 2.0  # a file's size and mtime must stay the same this long before it is taken
    give_up: float = 120.0  # an incomplete file this long after its last change is logged as a problem
    once: bool = False  # inspect what is there, wait for the files still settling, then return

    def validate(self) -> None:
        if not self.poll > 0:
            raise ConfigError(f"--poll must be more than 0 seconds, got {self.poll}")
        if not self.settle >= 0:
            raise ConfigError(f"--settle must be 0 seconds or more, got {self.settle}")
        if not self.give_up >= self.settle:
            raise ConfigError(f"--give-up ({self.give_up} s) must be at least --settle ({self.settle} s)")
        self.predict.validate()
        self.segment_options.validate()


@dataclass
class WatchStats:
    inspected: int = 0  # this session
    problems: int = 0  # this session
    pending: int = 0  # seen, not taken yet (settling or incomplete) at the last look
    already_logged: int = 0  # skipped: inspected before, or a problem at the same size and mtime
    numbered_by_order: int = 0  # frames whose name holds no number: numbered in the order taken
    polls: int = 0
    seconds: float = 0.0  # inspecting and logging (not waiting)

    @property
    def images_per_s(self) -> float:
        return self.inspected / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int


def incomplete_reason(path: str | Path) -> str | None:
    """Why the file is not whole yet as far as its format tells (None: it looks whole). A JPEG must end with its
    EOI marker (trailing zero padding allowed) and a PNG with its IEND chunk; other formats are not checked."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if not head:
                return "empty file"
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 64))
            tail = fh.read()
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if head.startswith(JPEG_START) and not tail.rstrip(b"\x00").endswith(JPEG_END):
        return "JPEG without its end marker (EOI): truncated or still being written"
    if head == PNG_START and not tail.endswith(PNG_END):
        return "PNG without its IEND chunk: truncated or still being written"
    return None


RACY_S = 2.0  # a folder changed this recently is listed again even when its mtime looks the same (clock ticks)


class FolderScan:
    """The image files below a folder (relative paths with "/"), hidden entries and symbolic links left out.
    A folder is listed again only when its mtime changed (or changed less than RACY_S ago: an entry added in
    the same clock tick as the last listing leaves the mtime as it was), so a poll over coils already done costs
    one stat per folder, not one per file. Entries that vanish while walking are skipped."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._listed: dict[Path, tuple[int, list[str], list[str]]] = {}  # folder -> (mtime_ns, folders, files)

    def _list(self, directory: Path, wall: float) -> tuple[list[str], list[str]]:
        mtime_ns = directory.stat().st_mtime_ns
        cached = self._listed.get(directory)
        if cached is not None and cached[0] == mtime_ns and wall - mtime_ns / 1e9 > RACY_S:
            return cached[1], cached[2]
        folders, files = [], []
        for entry in os.scandir(directory):
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.name)
                elif entry.is_file(follow_symlinks=False) and is_image_file(Path(entry.name)):
                    files.append(entry.name)
            except OSError:
                continue
        self._listed[directory] = (mtime_ns, folders, files)
        return folders, files

    def files(self) -> Iterator[str]:
        wall, seen = time.time(), set()
        stack = [(self.folder, "")]
        while stack:
            directory, prefix = stack.pop()
            seen.add(directory)
            try:
                folders, files = self._list(directory, wall)
            except OSError:
                continue
            stack += [(directory / name, f"{prefix}{name}/") for name in folders]
            for name in files:
                yield prefix + name
        self._listed = {d: v for d, v in self._listed.items() if d in seen}  # removed folders forgotten


def file_state(path: str | Path) -> FileState | None:
    """Size and mtime of a plain file (None: gone, or no longer a plain file)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return FileState(st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def scan(folder: Path) -> dict[str, FileState]:
    """Every image file below `folder` with its size and mtime (one full walk; the watcher keeps a FolderScan)."""
    found = {}
    for rel in FolderScan(folder).files():
        state = file_state(folder / rel)
        if state is not None:
            found[rel] = state
    return found


class FrameInspector:
    """The models, loaded once: a list of files -> batches of (paths, prediction rows, segment results)."""

    def __init__(self, config: WatchConfig):
        self.config = config.predict
        self.cascade = Cascade.from_runs(config.binary, config.multiclass, config.predict)
        runs = {"binary": self.cascade.binary, "multiclass": self.cascade.multiclass}
        self.step = None
        if config.segment is not None:
            seg_run = load_model(config.segment)
            self.step = SegmentStep(seg_run, config.segment_options, make_engine(seg_run, config.predict))
            runs["segment"] = seg_run
        self.models = {role: describe_run(run) for role, run in runs.items()}
        self.notes = list(self.cascade.notes)  # e.g. why --engine auto passed over an export
        if self.step is not None and getattr(self.step.engine, "note", ""):
            self.notes.append(self.step.engine.note)

    def batches(self, paths: list[Path], on_problem: Callable[[Problem], None]) -> Iterator[tuple]:
        preprocesses = [*self.cascade.preprocesses, *([self.step.preprocess] if self.step else [])]
        with torch.inference_mode():
            for batch in iter_batches(paths, preprocesses, self.config.batch_size, self.config.workers,
                                      on_problem=on_problem):
                rows = self.cascade.predict_batch(batch)
                results = (self.step(batch.input(self.step.preprocess), rows) if self.step
                           else [None] * len(rows))
                yield batch.paths, rows, results


@dataclass
class _Seen:
    state: FileState
    since: float  # time.monotonic() when this state was first seen


@dataclass
class _Ready:
    path: str
    rel: str
    state: FileState
    name: FrameName


class FolderWatcher:
    """The watcher's memory between polls; `poll()` looks once and inspects what is ready."""

    def __init__(self, log: InspectionLog, in_dir: str | Path, config: WatchConfig, inspector: FrameInspector,
                 on_problem: Callable[[Problem], None] | None = None):
        folder = Path(in_dir)
        if not folder.is_dir():
            raise ConfigError(f"{folder}: not a folder (the folder to watch)")
        config.validate()
        self.log, self.folder, self.config, self.inspector = log, folder.resolve(), config, inspector
        self.naming = CoilNaming(config.coil_pattern)
        self._scan = FolderScan(self.folder)
        self._root = str(self.folder)
        self.on_problem = on_problem
        self.stats = WatchStats()
        self._done: set[str] = set()  # paths inspected (by us or found in the log)
        self._failed: dict[str, set[FileState | None]] = {}  # path -> the file states logged as problems
        self._seen: dict[str, _Seen] = {}

    def _path(self, rel: str) -> str:
        return os.path.join(self._root, rel)  # str(folder / rel), without building a Path per file and poll

    def _skip_known(self, paths: list[str], states: dict[str, FileState]) -> set[str]:
        """Paths the log already has (inspected, or a problem at the same state): remembered and returned."""
        if not paths:
            return set()
        known = self.log.inspected_paths(paths)
        self._done |= known
        for path, size, mtime_ns in self.log.problem_states(paths):
            state = None if size is None or mtime_ns is None else FileState(size, mtime_ns)
            self._failed.setdefault(path, set()).add(state)
        known |= {p for p in paths if states[p] in self._failed.get(p, ())}
        self.stats.already_logged += len(known)
        return known

    def _problem(self, path: str, message: str, state: FileState | None) -> None:
        self.log.record_problem(path, message, SOURCE, state and state.size, state and state.mtime_ns)
        self._failed.setdefault(path, set()).add(state)
        self._seen.pop(path, None)
        self.stats.problems += 1
        if self.on_problem:
            self.on_problem(Problem("watch", path, message))

    def poll(self, stop: threading.Event | None = None,
             on_progress: Callable[[WatchStats], None] | None = None) -> WatchStats:
        """One look at the folder: inspect what is ready (stopping after the current batch when `stop` is set)."""
        now, wall = time.monotonic(), time.time()
        states: dict[str, FileState] = {}
        rel_of: dict[str, str] = {}
        for rel in self._scan.files():
            path = self._path(rel)
            if path in self._done:  # never stat'ed again: a poll costs one stat per new or pending file
                continue
            state = file_state(path)
            if state is None or state in self._failed.get(path, ()):
                continue
            states[path], rel_of[path] = state, rel
        asked = [p for p in states if p not in self._seen]
        for path in self._skip_known(asked, states):
            del states[path]
        self._seen = {p: s for p, s in self._seen.items() if p in states}  # vanished or done: forgotten

        ready: list[_Ready] = []
        for path, state in states.items():
            seen = self._seen.get(path)
            if seen is None or seen.state != state:
                seen = self._seen[path] = _Seen(state, now)
            if now - seen.since < self.config.settle:
                continue
            reason = incomplete_reason(path)
            if reason is None:
                try:
                    ready.append(_Ready(path, rel_of[path], state, self.naming.parse(rel_of[path])))
                except NamingError as exc:
                    self._problem(path, exc.problem, state)
            elif wall - state.mtime_ns / 1e9 >= self.config.give_up:
                self._problem(path, f"incomplete {self.config.give_up:g} s after its last change: {reason}", state)
        # Asked once more just before inspecting (cheap: indexed, a few paths): another writer on the same log
        # may have taken a file since this process first saw it.
        again = [r.path for r in ready if r.path not in asked]
        known = self._skip_known(again, {r.path: r.state for r in ready})
        ready = [r for r in ready if r.path not in known]
        self._count_pending(states)
        self._inspect(ready, stop, on_progress)
        self._count_pending(states)
        self.stats.polls += 1
        if on_progress:
            on_progress(self.stats)
        return self.stats

    def _count_pending(self, states: dict[str, FileState]) -> None:
        self.stats.pending = sum(1 for p, state in states.items()
                                 if p not in self._done and state not in self._failed.get(p, ()))

    def _order(self, ready: list[_Ready]) -> list[tuple[_Ready, int]]:
        """(file, frame) in (coil, frame) order; names without a number take the next frames of their coil, after
        its highest frame in the log or in this poll (the log is read again each poll: an uncommitted batch left
        no numbers)."""
        ready = sorted(ready, key=lambda r: (natural_key(r.name.coil), r.name.frame is None, r.name.frame or 0,
                                             natural_key(r.rel)))
        highest: dict[str, int] = {}  # the numbered frames taken in this poll count too
        for r in ready:
            if r.name.frame is not None:
                highest[r.name.coil] = max(highest.get(r.name.coil, -1), r.name.frame)
        following: dict[str, int] = {}
        ordered = []
        for r in ready:
            frame = r.name.frame
            if frame is None:
                if r.name.coil not in following:
                    last = self.log.last_frame(r.name.coil)
                    following[r.name.coil] = max(-1 if last is None else last, highest.get(r.name.coil, -1)) + 1
                frame = following[r.name.coil]
                following[r.name.coil] += 1
            ordered.append((r, frame))
        return ordered

    def _inspect(self, ready: list[_Ready], stop, on_progress) -> None:
        if not ready:
            return
        ordered = {r.path: (r, frame) for r, frame in self._order(ready)}
        paths = [Path(p) for p in ordered]

        def bad(problem: Problem) -> None:
            self._problem(problem.file, problem.problem, ordered[problem.file][0].state)
            ordered.pop(problem.file, None)
            self.stats.pending -= 1

        start = time.perf_counter()
        for batch_paths, rows, results in self.inspector.batches(paths, bad):
            items = []
            for path, row, result in zip(batch_paths, rows, results):
                r, frame = ordered.pop(str(path))
                row = {**row, "ImageId": flat_image_id(r.rel)}
                regions = regions_from_masks(result.masks) if result is not None else []
                items.append((row, regions, r.name.coil, frame, r.path, None))
                self.stats.numbered_by_order += r.name.numbered_by_order
            self.log.record_many(items, self.inspector.models)  # one transaction: the batch or nothing
            self._done.update(item[4] for item in items)
            for item in items:
                self._seen.pop(item[4], None)
            self.stats.inspected += len(items)
            self.stats.pending -= len(items)
            self.stats.seconds += time.perf_counter() - start
            start = time.perf_counter()
            if on_progress:
                on_progress(self.stats)
            if stop is not None and stop.is_set():
                break


def watch(log: InspectionLog, in_dir: str | Path, config: WatchConfig, stop: threading.Event | None = None,
          max_polls: int | None = None, on_progress: Callable[[WatchStats], None] | None = None,
          on_problem: Callable[[Problem], None] | None = None,
          inspector: FrameInspector | None = None) -> WatchStats:
    """Follow `in_dir` until `stop` is set, `max_polls` polls are done, or (config.once) nothing is pending.
    Loads the models once (or uses `inspector`); returns the session's counts."""
    config.validate()
    stop = stop or threading.Event()
    watcher = FolderWatcher(log, in_dir, config, inspector or FrameInspector(config), on_problem)
    while not stop.is_set():
        watcher.poll(stop, on_progress)
        if config.once and watcher.stats.pending == 0:
            break
        if max_polls is not None and watcher.stats.polls >= max_polls:
            break
        stop.wait(config.poll)
    return watcher.stats
