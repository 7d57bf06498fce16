"""Prediction on several processes: torchrun ranks and --processes workers write byte for byte what one process
writes (predictions, submission, overlays, inspection log rows in order); a rank that fails or dies fails the
run with one line naming it and its image, and leaves no output and no log row."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from steelinspect.data.images import list_images
from steelinspect.infer.shard import failure_message, share
from steelinspect.infer.testhooks import ENV as FAIL_ENV
from tests.cli_runner import run_main

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_share_is_round_robin_over_the_one_listing():
    shares = [list(share(11, rank, 3)) for rank in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert list(share(1, 1, 2)) == []  # more ranks than images: a rank may have nothing to do


@pytest.fixture(scope="module")
def images(tiny_seg_data, tmp_path_factory) -> Path:
    """7 synthetic images and, third in file-name order, one that cannot be decoded (skipped, never fatal)."""
    folder = tmp_path_factory.mktemp("shard") / "images"
    folder.mkdir()
    names = sorted(p.name for p in (tiny_seg_data / "train_images").iterdir())[:7]
    for name in names:
        shutil.copy(tiny_seg_data / "train_images" / name, folder / name)
    (folder / f"{Path(names[1]).stem}x.jpg").write_bytes(b"not a jpeg")
    return folder


def _segment_args(forced_runs, tiny_segment_run, images, out: Path) -> list:
    # Steps 1 and 2 forced (every image defective, class 3) so the real tiny segmenter runs on every image.
    return ["predict", images, "--binary", forced_runs["binary"], "--multiclass", forced_runs["multiclass"],
            "--segment", tiny_segment_run, "--class-gate", "off", "--out", out / "predictions.csv",
            "--submission", out / "submission.csv", "--overlays", out / "overlays", "--workers", "1",
            "--device", "cpu", "--engine", "torch", "--db", f"sqlite:///{out / 'log.db'}", "--coil", "C7"]


def _cascade_args(tiny_runs, images, out: Path) -> list:
    return ["predict", images, "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"],
            "--out", out / "predictions.csv", "--workers", "1", "--device", "cpu", "--engine", "torch",
            "--batch-size", "2", "--db", f"sqlite:///{out / 'log.db'}"]


def _torchrun(*args, env=ENV) -> subprocess.CompletedProcess:
    # --standalone: the rendezvous store listens on a port the system picks, so two suites never collide.
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "steelinspect", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def _cli(*args, env=ENV) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steelinspect", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _log_rows(db: Path) -> dict[str, list[tuple]]:
    """Every table of the log in id order, without the times of writing."""
    with sqlite3.connect(db) as con:
        tables = {}
        for table in ("model_set", "inspection", "inspection_class", "defect"):
            cursor = con.execute(f"SELECT * FROM {table} ORDER BY rowid")
            keep = [i for i, d in enumerate(cursor.description) if not d[0].endswith("_at")]
            tables[table] = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
    return tables


def _same_row(a: tuple, b: tuple) -> bool:
    """Equal, floats to 1e-6: a model's output for an image can differ in its last float32 bits with the other
    images of its batch (oneDNN picks its kernels by batch), and a rank's batches hold other images than one
    process's. The files print 6 decimals, the log the full value."""
    return len(a) == len(b) and all(x == pytest.approx(y, abs=1e-6) if isinstance(y, float) else x == y
                                    for x, y in zip(a, b))


def _assert_same_outputs(one: Path, many: Path, segment: bool) -> None:
    assert (many / "predictions.csv").read_bytes() == (one / "predictions.csv").read_bytes()
    if segment:
        assert (many / "submission.csv").read_bytes() == (one / "submission.csv").read_bytes()
        names = sorted(p.name for p in (one / "overlays").iterdir())
        assert sorted(p.name for p in (many / "overlays").iterdir()) == names
        for name in names:
            assert (many / "overlays" / name).read_bytes() == (one / "overlays" / name).read_bytes(), name
    rows, sharded = _log_rows(one / "log.db"), _log_rows(many / "log.db")
    assert rows["inspection"] and sharded.keys() == rows.keys()
    for table in rows:  # the same rows in the same order; the log keeps full floats (see _same_row)
        assert len(sharded[table]) == len(rows[table]), table
        assert all(_same_row(a, b) for a, b in zip(sharded[table], rows[table])), table
    # Nothing else beside the outputs: the parts folder and every temporary are gone.
    assert sorted(p.name for p in many.iterdir()) == sorted(p.name for p in one.iterdir())


def test_torchrun_two_ranks_write_what_one_process_writes(forced_runs, tiny_segment_run, images, tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    code, _, err = run_main(*_segment_args(forced_runs, tiny_segment_run, images, one))
    assert code == 0, err
    proc = _torchrun(*_segment_args(forced_runs, tiny_segment_run, images, many))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_outputs(one, many, segment=True)
    # Rank 0 alone speaks: one summary, the bad image reported once.
    assert proc.stdout.count("7 images, 7 with defects, 1 skipped") == 1, proc.stdout
    assert proc.stderr.count("x.jpg") == 1 and "logged 7 inspections" in proc.stdout


def test_processes_write_what_one_process_writes(tiny_runs, images, tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    code, _, err = run_main(*_cascade_args(tiny_runs, images, one))
    assert code == 0, err
    proc = _cli(*_cascade_args(tiny_runs, images, many), "--processes", "2")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    _assert_same_outputs(one, many, segment=False)
    assert "7 images" in proc.stdout and "1 skipped" in proc.stdout


def _second_image_of_rank_1(images: Path) -> str:
    readable = [p.name for p in list_images(images) if not p.name.endswith("x.jpg")]
    paths = list_images(images)
    mine = [paths[i].name for i in share(len(paths), 1, 2) if paths[i].name in readable]
    return mine[1]


# A raising rank is reported the same way under both launchers (its own marker); a dying one is named by the
# spawning parent (signal) or by rank 0 from the dead rank's progress file: those three paths are the cases.
@pytest.mark.parametrize("launcher, spec, segment, says", [
    ("processes", "1", True, "rank 1 failed on image {image}: RuntimeError: " + FAIL_ENV),
    ("processes", "1:1:die", False, "rank 1 was killed by signal 9 on image {image}"),
    ("torchrun", "1:1:die", False, "rank 1 died on image {image}"),  # named by rank 0 from the dead rank's marker
])
def test_a_failing_rank_fails_the_run_with_one_line_and_no_output(launcher, spec, segment, says, tiny_runs, forced_runs,
                                                                 tiny_segment_run, images, tmp_path):
    # With --segment once (no submission, no overlays left either); the cascade alone costs less.
    args = (_segment_args(forced_runs, tiny_segment_run, images, tmp_path) if segment else
            _cascade_args(tiny_runs, images, tmp_path))
    env = {**ENV, FAIL_ENV: spec}
    proc = _torchrun(*args, env=env) if launcher == "torchrun" else _cli(*args, "--processes", "2", env=env)
    assert proc.returncode != 0
    line = says.format(image=_second_image_of_rank_1(images))
    ours = [text for text in proc.stderr.splitlines() if text.startswith("error:")]
    assert len(ours) == 1 and ours[0].startswith(f"error: {line}"), proc.stderr[-3000:]
    if launcher == "processes":
        assert "Traceback" not in proc.stderr
    # No output, no temporary, no row: only the (empty) log the run opened before predicting.
    assert [p.name for p in tmp_path.iterdir()] == ["log.db"]
    assert _log_rows(tmp_path / "log.db")["inspection"] == []


def test_a_peer_still_dying_is_named_dead_not_stopped(tmp_path):
    # A killed rank closes its sockets (its peers' meeting fails) a moment before the kernel marks it gone: rank 0
    # must wait for that rather than call it "stopped without a result" (a race seen once in CI).
    import json
    import socket
    import threading

    peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "rank-1.at").write_text(json.dumps({"host": socket.gethostname(), "pid": peer.pid,
                                                        "image": "a.jpg"}))
        (tmp_path / "rank-0.json").write_text(json.dumps({"ok": True}))
        threading.Timer(0.5, peer.kill).start()
        assert failure_message(tmp_path, 2, me=0) == "rank 1 died on image a.jpg"
    finally:
        peer.kill()
        peer.wait()


def test_bad_process_and_thread_counts_are_refused_in_one_line(tiny_runs, images, tmp_path):
    for extra, says in [(["--processes", "0"], "--processes must be at least 1"),
                        (["--processes", "2", "--threads", "0"], "--threads must be at least 1")]:
        code, _, err = run_main(*_cascade_args(tiny_runs, images, tmp_path), *extra)
        assert code == 1 and says in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
