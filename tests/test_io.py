"""Atomic files and folders: a killed writer's temporaries are removed by the next write of the same target
(never a live writer's), and a folder is replaced whole or not at all."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from steelinspect.errors import ConfigError
from steelinspect.io import atomic_dir, atomic_write, write_json


def _temps(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # exited and reaped: no process has this PID now
    return proc.pid


def test_a_writer_killed_mid_write_leaves_a_temporary_the_next_write_removes(tmp_path):
    target = tmp_path / "p.csv"
    script = textwrap.dedent(f"""
        import os, signal
        from steelinspect.io import atomic_write
        with atomic_write({str(target)!r}) as tmp:
            tmp.write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ)
    assert proc.returncode == -signal.SIGKILL
    assert len(_temps(tmp_path, "p.csv")) == 1 and not target.exists()  # the litter the issue saw

    write_json(target, {"ok": True})
    assert _temps(tmp_path, "p.csv") == [] and target.read_text().strip().endswith("}")


def test_only_dead_writers_temporaries_of_the_same_target_are_removed(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        (tmp_path / f".model.onnx.{dead}.abc123.tmp").write_bytes(b"x")
        (tmp_path / f".model.onnx.{live.pid}.def456.tmp").write_bytes(b"x")  # another writer, still working
        (tmp_path / f".other.onnx.{dead}.ghi789.tmp").write_bytes(b"x")  # another target's: not ours to judge
        (tmp_path / ".model.onnx.tmp").write_bytes(b"x")  # not a temporary name of ours
        with atomic_write(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"graph")
        assert _temps(tmp_path, "model.onnx") == [f".model.onnx.{live.pid}.def456.tmp", ".model.onnx.tmp"]
        assert (tmp_path / f".other.onnx.{dead}.ghi789.tmp").exists()
        assert (tmp_path / "model.onnx").read_bytes() == b"graph"
    finally:
        live.kill()
        live.wait()


def test_temporary_names_carry_the_writer_pid(tmp_path):
    with atomic_write(tmp_path / "a.json") as tmp:
        assert tmp.name.startswith(f".a.json.{os.getpid()}.") and tmp.name.endswith(".tmp")
    with atomic_dir(tmp_path / "out") as tmp:
        assert tmp.name.startswith(f".out.{os.getpid()}.") and tmp.is_dir()


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "a.txt").write_text("old a")
    (target / "gone.txt").write_text("only in the old folder")
    before = _snapshot(target)
    ours = lambda entry: entry.suffix == ".txt"  # noqa: E731

    with pytest.raises(RuntimeError):
        with atomic_dir(target, replaceable=ours) as tmp:
            (tmp / "a.txt").write_text("new a")
            raise RuntimeError("killed midway")
    assert _snapshot(target) == before and _temps(tmp_path, "report") == []

    with atomic_dir(target, replaceable=ours) as tmp:
        (tmp / "a.txt").write_text("new a")
    assert _snapshot(target) == {"a.txt": b"new a"} and _temps(tmp_path, "report") == []


def test_atomic_dir_refuses_a_folder_holding_other_files(tmp_path, monkeypatch):
    target = tmp_path / "report"
    target.mkdir()
    (target / "thesis.docx").write_text("someone's work")
    with pytest.raises(ConfigError, match=r"report: holds 1 file\(s\) that are not a previous output folder "
                                          r"\(e.g. thesis.docx\)"):
        with atomic_dir(target, replaceable=lambda e: e.suffix == ".txt"):
            pytest.fail("must refuse before yielding")
    assert (target / "thesis.docx").read_text() == "someone's work"
    (target / "thesis.docx").unlink()
    monkeypatch.chdir(target)
    with pytest.raises(ConfigError, match="current folder"):
        with atomic_dir("."):
            pytest.fail("must refuse before yielding")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        with atomic_dir(tmp_path / "file"):
            pytest.fail("must refuse before yielding")


def test_atomic_dir_removes_a_dead_writers_folder(tmp_path):
    stale = tmp_path / f".report.{_dead_pid()}.abc123.tmp"
    stale.mkdir()
    (stale / "stats.json").write_text("{}")
    with atomic_dir(tmp_path / "report") as tmp:
        (tmp / "stats.json").write_text("{}")
    assert not stale.exists() and (tmp_path / "report" / "stats.json").is_file()
