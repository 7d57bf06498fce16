"""`steelinspect watch`: a folder a camera writes into, inspected once per file, in (coil, frame) order, restart
safe. The naming and completeness rules alone; the watcher in this process (settling, order, restart through
its stop event, on SQLite and PostgreSQL); and the command as a plant runs it: a feeder writing 500 frames of 5
coils while it follows them, killed with SIGKILL midway and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the inspection log needs the db extra: pip install -e '.[db]'")
pytest.importorskip("alembic", reason="the inspection log needs the db extra: pip install -e '.[db]'")

from steelinspect.errors import ConfigError, LogError
from steelinspect.infer.config import PredictConfig
from steelinspect.inspect_log import open_log
from steelinspect.inspect_log.naming import CoilNaming, FrameName, NamingError, flat_image_id, natural_key
from steelinspect.inspect_log.watch import FolderWatcher, FrameInspector, WatchConfig, incomplete_reason, watch


def _jpeg(seed: int = 0, shape=(64, 400)) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, shape, dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((8, 8), 128, np.uint8))
    assert ok
    return buf.tobytes()


def _all(log) -> list:
    return log.query(page_size=1000).entries


# --- coil and frame from the path ----------------------------------------------------------------------------

def test_default_layout_takes_the_folder_as_coil_and_the_first_number_as_frame():
    naming = CoilNaming()
    assert naming.parse("C0417/frame_0017.jpg") == FrameName("C0417", 17)
    assert naming.parse("2026-11-25/C0417/cam1_0003.png") == FrameName("C0417", 1)  # the FIRST number
    assert naming.parse(Path("C9") / "x.jpg") == FrameName("C9", None)  # the folder's number is not the frame's
    top = naming.parse("C0417/top.jpg")
    assert top == FrameName("C0417", None) and top.numbered_by_order
    with pytest.raises(NamingError, match="not inside a coil folder"):
        naming.parse("loose_0001.jpg")
    with pytest.raises(NamingError, match="too large"):
        naming.parse("C1/20261125101500.jpg")
    assert "first number" in naming.describe()


def test_coil_pattern_takes_named_groups_and_refuses_what_it_does_not_match():
    naming = CoilNaming(r"(?P<coil>C\d+)_(?P<frame>\d+)\.jpg$")
    assert naming.parse("day1/C17_0003.jpg") == FrameName("C17", 3)
    assert naming.parse("C17_0004.jpg") == FrameName("C17", 4)  # no folder needed
    with pytest.raises(NamingError, match="does not match --coil-pattern"):
        naming.parse("day1/notes_0001.jpg")
    by_order = CoilNaming(r"^(?P<coil>[^/]+)/")
    assert by_order.parse("C5/a.jpg") == FrameName("C5", None) and "order" in by_order.describe()
    with pytest.raises(ConfigError, match="named group"):
        CoilNaming(r"(\w+)/(?P<frame>\d+)")
    with pytest.raises(ConfigError, match="not a regular expression"):
        CoilNaming(r"(?P<coil>[")


def test_image_ids_and_coil_order():
    assert flat_image_id("C0417/frame_0001.jpg") == "C0417__frame_0001.jpg"
    assert sorted(["C10", "C2", "C1"], key=natural_key) == ["C1", "C2", "C10"]


# --- is the file whole yet -------------------------------------------------------------------------------------

def test_completeness_wants_the_jpeg_eoi_and_the_png_iend(tmp_path):
    jpeg, png = _jpeg(), _png()
    cases = {"whole.jpg": jpeg, "padded.jpg": jpeg + b"\x00" * 10, "cut.jpg": jpeg[: len(jpeg) // 2],
             "whole.png": png, "cut.png": png[:-12], "empty.jpg": b"", "text.jpg": b"not an image at all\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    reason = {name: incomplete_reason(tmp_path / name) for name in cases}
    assert reason["whole.jpg"] is None and reason["padded.jpg"] is None and reason["whole.png"] is None
    assert "EOI" in reason["cut.jpg"] and "IEND" in reason["cut.png"] and reason["empty.jpg"] == "empty file"
    assert reason["text.jpg"] is None  # no format to go by: the decoder says what it is (a problem)
    assert "cannot read" in incomplete_reason(tmp_path / "missing.jpg")


def test_folder_scan_lists_a_quiet_folder_from_memory_and_sees_what_is_added(tmp_path):
    from steelinspect.inspect_log.watch import FolderScan, scan

    (tmp_path / "C1").mkdir()
    (tmp_path / "C1" / "a.jpg").write_bytes(b"x")
    (tmp_path / "C1" / "notes.txt").write_bytes(b"x")
    (tmp_path / "C1" / ".part.jpg").write_bytes(b"x")
    (tmp_path / "C1" / "link.jpg").symlink_to(tmp_path / "C1" / "a.jpg")
    old = time.time() - 60
    for folder in (tmp_path, tmp_path / "C1"):
        os.utime(folder, (old, old))
    folders = FolderScan(tmp_path)
    assert list(folders.files()) == ["C1/a.jpg"]
    (tmp_path / "C1" / "b.jpg").write_bytes(b"x")
    os.utime(tmp_path / "C1", (old, old))  # as if b.jpg had come in the clock tick of the last listing
    assert list(folders.files()) == ["C1/a.jpg"]  # from memory: the folder's mtime is as listed
    (tmp_path / "C2").mkdir()
    (tmp_path / "C2" / "d.png").write_bytes(b"y")
    (tmp_path / "C1" / "c.jpg").write_bytes(b"z")  # the folder changed: listed again
    assert sorted(folders.files()) == ["C1/a.jpg", "C1/b.jpg", "C1/c.jpg", "C2/d.png"]
    (tmp_path / "C1" / "a.jpg").unlink()
    assert "C1/a.jpg" not in folders.files() and scan(tmp_path)["C2/d.png"].size == 1


# --- the watcher in this process ------------------------------------------------------------------------------

def _config(tiny_runs, **kw) -> WatchConfig:
    base = dict(predict=PredictConfig(batch_size=4, workers=1, device="cpu", engine="torch"), poll=0.05,
                settle=0.0, give_up=60.0)
    return WatchConfig(tiny_runs["binary"], tiny_runs["multiclass"], **{**base, **kw})


@pytest.fixture(scope="module")
def inspector(tiny_runs):
    return FrameInspector(_config(tiny_runs))


def test_a_file_is_taken_only_once_it_settled_and_is_whole(tiny_runs, inspector, tmp_path):
    folder = tmp_path / "cam"
    (folder / "C1").mkdir(parents=True)
    jpeg = _jpeg(1)
    target = folder / "C1" / "frame_0001.jpg"
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as log:
        watcher = FolderWatcher(log, folder, _config(tiny_runs, settle=0.4), inspector)
        with target.open("wb") as fh:
            fh.write(jpeg[:1000])
            fh.flush()
            assert watcher.poll().pending == 1  # first look
            time.sleep(0.5)
            assert watcher.poll().pending == 1 and watcher.stats.inspected == 0  # settled, but no EOI yet
            fh.write(jpeg[1000:])
        assert watcher.poll().inspected == 0  # whole now, but it changed: settling again
        time.sleep(0.5)
        stats = watcher.poll()
        assert (stats.inspected, stats.pending, stats.problems) == (1, 0, 0)
        (entry,) = _all(log)
        assert (entry.coil, entry.frame, entry.image_id, entry.path) == \
            ("C1", 1, "C1__frame_0001.jpg", str(target.resolve()))
        assert watcher.poll().inspected == 1  # never twice


def test_order_numbering_problems_and_a_restart_inspect_each_file_once(tiny_runs, inspector, log_url, tmp_path):
    """In (coil, frame) order; names without a number continue after the coil's highest frame in the log; a stop
    after the first batch and a new watcher: every file once, problems once, a changed problem file retried."""
    folder = tmp_path / "cam"
    for coil, frames in {"C10": [3, 1, 2], "C2": [5, 4]}.items():
        (folder / coil).mkdir(parents=True)
        for f in frames:
            (folder / coil / f"frame_{f:04d}.jpg").write_bytes(_jpeg(f))
    (folder / "C2" / "top.jpg").write_bytes(_jpeg(7))
    (folder / "C2" / "bottom.jpg").write_bytes(_jpeg(8))
    (folder / "C10" / "notes.png").write_bytes(b"a text file named like an image\n")
    (folder / "loose.jpg").write_bytes(_jpeg(9))  # not in a coil folder
    (folder / "C2" / "readme.txt").write_text("not an image name: not looked at")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "frame_0001.jpg").write_bytes(_jpeg(10))
    config = _config(tiny_runs)
    seen: list = []
    with open_log(log_url) as log:
        stop = threading.Event()
        first = FolderWatcher(log, folder, config, inspector, on_problem=seen.append)
        first.poll(stop, on_progress=lambda s: stop.set() if s.inspected else None)  # stops after a batch
        assert first.stats.inspected == 4 and log.count() == 4
        stats = watch(log, folder, WatchConfig(**{**config.__dict__, "once": True}), inspector=inspector,
                      on_problem=seen.append)
        assert (stats.inspected, stats.already_logged, stats.problems) == (3, 4 + 1, 1)  # 4 + loose.jpg
        entries = sorted(_all(log), key=lambda e: e.id)
        assert [(e.coil, e.frame) for e in entries] == [
            ("C2", 4), ("C2", 5), ("C2", 6), ("C2", 7), ("C10", 1), ("C10", 2), ("C10", 3)]
        by_frame = {e.frame: e.image_id for e in entries if e.coil == "C2"}
        assert (by_frame[6], by_frame[7]) == ("C2__bottom.jpg", "C2__top.jpg")  # name order
        assert sorted((Path(p.file).name, p.problem.split(" (")[0]) for p in seen) == [
            ("loose.jpg", "not inside a coil folder"), ("notes.png", "not a readable image")]
        assert sorted(Path(p.path).name for p in log.problems()) == ["loose.jpg", "notes.png"]
        assert all(p.source == "watch" and p.size is not None for p in log.problems())
        # Restarted again: nothing new. The broken file replaced by an image: tried again, and inspected.
        assert watch(log, folder, WatchConfig(**{**config.__dict__, "once": True}), inspector=inspector).inspected == 0
        (folder / "C10" / "notes.png").write_bytes(_png())
        again = watch(log, folder, WatchConfig(**{**config.__dict__, "once": True}), inspector=inspector)
        assert again.inspected == 1 and log.count() == 8
        assert len(log.inspected_paths([str((folder / "C10" / "notes.png").resolve())])) == 1


# --- the command, killed midway -------------------------------------------------------------------------------

COILS, FRAMES = 5, 100


def _feed(folder: Path, sources: list[bytes], killed: threading.Event) -> None:
    """Write 500 frames coil by coil as a camera would (straight into place, not renamed); every 20th in two
    chunks with a pause longer than a poll and shorter than the settle time. Coils 0-2 and a truncated JPEG while
    the first watcher runs; once it is killed, coils 3-4 and a text file named like an image."""
    for c in range(COILS):
        if c == 3:
            killed.wait(300)
            (folder / "C003").mkdir()
            (folder / "C003" / "frame_0501.jpg").write_bytes(b"camera log: this is not an image\n" * 20)
        coil = folder / f"C{c:03d}"
        coil.mkdir(parents=True, exist_ok=True)
        for i in range(FRAMES):
            data = sources[(c * FRAMES + i) % len(sources)]
            cut = len(data) // 3 if i % 20 == 7 else 0
            with (coil / f"frame_{i:04d}.jpg").open("wb") as fh:
                if cut:
                    fh.write(data[:cut])
                    fh.flush()
                    time.sleep(0.4)
                fh.write(data[cut:])
            time.sleep(0.004)
        if c == 1:
            (folder / "C001" / "frame_0500.jpg").write_bytes(sources[0][: len(sources[0]) // 2])


def _start(args: list, stderr_path: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with stderr_path.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "steelinspect", "watch", *map(str, args)],
                                stdout=subprocess.PIPE, stderr=err, env=env)


@pytest.mark.slow
def test_watch_follows_a_camera_folder_and_survives_a_kill(tiny_runs, synth_dir, tmp_path):
    folder, url = tmp_path / "cam", f"sqlite:///{tmp_path / 'log.db'}"
    folder.mkdir()
    sources = [p.read_bytes() for p in sorted((synth_dir / "train_images").iterdir())][:16]
    args = [folder, "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"], "--db", url,
            "--poll", "0.2", "--settle", "0.6", "--give-up", "3", "--batch-size", "8", "--workers", "1",
            "--device", "cpu", "--engine", "torch"]
    stderr = tmp_path / "watch.err"
    first = _start(args, stderr)
    killed = threading.Event()
    try:
        deadline = time.monotonic() + 120
        while "watching" not in stderr.read_text() and time.monotonic() < deadline:
            assert first.poll() is None, stderr.read_text()
            time.sleep(0.1)
        feeder = threading.Thread(target=_feed, args=(folder, sources, killed), daemon=True)
        feeder.start()
        deadline = time.monotonic() + 120
        with open_log(url) as log:  # killed midway: some frames logged, the feeder still writing
            while log.count() < 120 and time.monotonic() < deadline:
                assert first.poll() is None, stderr.read_text()
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = log.count()
        killed.set()
        assert 120 <= killed_at < 300
        feeder.join(120)
        assert not feeder.is_alive()
    finally:
        killed.set()
        if first.poll() is None:
            first.kill()
    second = subprocess.run([sys.executable, "-m", "steelinspect", "watch", *map(str, args), "--once"],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr + stderr.read_text()
    assert "done:" in second.stdout and f"{500 - killed_at} inspected" in second.stdout

    with open_log(url) as log:
        entries = _all(log)
        paths = [e.path for e in entries]
        assert len(entries) == 500 and len(set(paths)) == 500  # exactly once
        for e in entries:
            coil, name = Path(e.path).parts[-2:]
            assert Path(e.path).parent.parent == folder.resolve()
            assert (e.coil, e.frame, e.image_id) == (coil, int(name[6:10]), f"{coil}__{name}")
        assert {(e.coil, e.frame) for e in entries} == {(f"C{c:03d}", i) for c in range(COILS) for i in range(FRAMES)}
        # Frames written in two chunks were inspected whole: every copy of a source image got its verdict.
        verdicts: dict[int, list] = {}
        for e in entries:
            c, i = int(e.coil[1:]), e.frame
            verdicts.setdefault((c * FRAMES + i) % len(sources), []).append(e.p_defect)
        assert all(max(v) - min(v) < 1e-4 for v in verdicts.values()), verdicts
        problems = sorted((Path(p.path).name, p.message) for p in log.problems())
        assert [name for name, _ in problems] == ["frame_0500.jpg", "frame_0501.jpg"]  # each once
        assert "EOI" in problems[0][1] and "not a readable image" in problems[1][1]


def test_watch_refusals_are_one_line_before_the_models_load(tmp_path):
    from tests.cli_runner import run_main

    base = ["watch", tmp_path, "--binary", tmp_path / "none", "--multiclass", tmp_path / "none", "--db",
            f"sqlite:///{tmp_path / 'log.db'}"]
    refusals = {"not a regular expression": ["--coil-pattern", "(?P<coil>["],
                "named group": ["--coil-pattern", r"(\w+)"], "--give-up": ["--settle", "5", "--give-up", "1"],
                "--poll": ["--poll", "0"]}
    for message, extra in refusals.items():
        code, out, err = run_main(*base, *extra)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_main("watch", tmp_path / "missing", *base[2:])
    assert code == 1 and "not a folder" in err
    assert not (tmp_path / "log.db").exists()


def test_ctrl_c_stops_the_command_after_the_current_batch(tiny_runs, tmp_path):
    """SIGINT while following: exit 0 after the batch in hand, every committed batch whole; --once takes the rest."""
    from tests.cli_runner import run_main

    folder, url = tmp_path / "cam", f"sqlite:///{tmp_path / 'log.db'}"
    (folder / "C1").mkdir(parents=True)
    for i in range(40):
        (folder / "C1" / f"frame_{i:04d}.jpg").write_bytes(_jpeg(i))
    args = ["watch", folder, "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"], "--db", url,
            "--poll", "0.1", "--settle", "0", "--batch-size", "4", "--workers", "1", "--device", "cpu",
            "--engine", "torch"]

    def interrupt() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with open_log(url) as log:
                    if log.count() >= 8:
                        break
            except LogError:  # the command is creating it
                pass
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    helper = threading.Thread(target=interrupt, daemon=True)
    helper.start()
    code, out, err = run_main(*args)
    helper.join(5)
    assert code == 0, err
    with open_log(url) as log:
        stopped_at = log.count()
    assert "stopped:" in out and f"{stopped_at} inspected" in out
    assert 8 <= stopped_at < 40 and stopped_at % 4 == 0
    code, out, err = run_main(*args, "--once")
    assert code == 0 and f"done: {40 - stopped_at} inspected" in " ".join(out.split()), err
    with open_log(url) as log:
        assert sorted(e.frame for e in _all(log)) == list(range(40))
