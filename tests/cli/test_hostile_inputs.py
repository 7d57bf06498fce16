"""Hostile inputs through the real console script: decompression bombs, images over OpenCV's own limit, truncated
and junk files, RLE numbers past int64. Each is one image's or one row's problem: reported, and the rest done,
with no traceback and with bounded memory."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_runner import run_cli as run
from tests.data.fixtures import bomb_jpeg, bomb_png, make_dataset

GOOD = ["a.jpg", "b.jpg", "c.jpg"]
BOMBS = ["bomb32k.jpg", "bomb60k.jpg", "bomb.png"]

# The console script, printing its peak resident memory (VmHWM) as it exits, whatever the exit code.
PEAK = """
import atexit, runpy, sys

def peak():
    with open("/proc/self/status") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    sys.stderr.write(f"\\npeak-rss-kb {kb}\\n")

atexit.register(peak)
sys.argv = ["steelinspect", *sys.argv[1:]]
runpy.run_module("steelinspect", run_name="__main__", alter_sys=True)
"""


def run_measured(*args) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command; no traceback allowed; returns the process and its peak memory in MB."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc (Linux)")
    proc = subprocess.run([sys.executable, "-c", PEAK, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc, int(re.search(r"peak-rss-kb (\d+)", proc.stderr).group(1)) / 1024


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    # Rich wraps table cells to the terminal; a wide one keeps each problem on one line for the assertions.
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """Three good 1600x256 images beside two JPEG bombs (32000x32000 and 60000x60000 declared in ~330 bytes), a PNG
    bomb, a truncated JPEG and a file that is no image at all."""
    root = make_dataset(tmp_path_factory.mktemp("hostile") / "data", n_images=3)
    images = root / "train_images"
    (images / "bomb32k.jpg").write_bytes(bomb_jpeg(32000, 32000))
    (images / "bomb60k.jpg").write_bytes(bomb_jpeg(60000, 60000))
    (images / "bomb.png").write_bytes(bomb_png(40000, 40000))
    good = (images / "c.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (images / "junk.jpg").write_bytes(b"this is not a picture of anything")
    return root


def test_check_lists_each_bad_file_and_stays_small(hostile):
    proc, peak_mb = run_measured("check", hostile)
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    for name in BOMBS:
        assert re.search(rf"{name} .* image declares \d+x\d+ pixels", out)
    assert out.count("over the limit of 1,638,400") == 3
    assert "truncated JPEG" in out and "not a JPEG, PNG, BMP or TIFF" in out
    assert "FAILED: 8 images" in out and "bad_image: 5" in out
    assert peak_mb < 600, peak_mb


@pytest.mark.slow
def test_predict_skips_bad_files_writes_the_good_ones_and_stays_small(hostile, tiny_runs, tmp_path):
    out_csv = tmp_path / "pred.csv"
    proc, peak_mb = run_measured("predict", hostile / "train_images", "--binary", tiny_runs["binary"],
                                 "--multiclass", tiny_runs["multiclass"], "--out", out_csv, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(out_csv).ImageId.tolist() == GOOD
    err = " ".join(proc.stderr.split())
    assert err.count("over the limit") == 3 and err.count("skipped") == 5
    assert "3 images" in proc.stdout and "5 skipped" in proc.stdout
    assert peak_mb < 1500, peak_mb


@pytest.mark.slow
def test_images_over_opencvs_own_limit_are_reported_not_raised(tmp_path, tiny_runs):
    # With our limit lifted, the 60000x60000 JPEG reaches OpenCV, which raises cv2.error: still one image's problem.
    root = make_dataset(tmp_path / "d", n_images=2)
    (root / "train_images" / "bomb60k.jpg").write_bytes(bomb_jpeg(60000, 60000))
    proc = run("--max-pixels", 10**10, "check", root)
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    assert "not a readable image (OpenCV" in out and "bad_image: 1" in out
    out_csv = tmp_path / "pred.csv"
    proc = run("--max-pixels", 10**10, "predict", root / "train_images", "--binary", tiny_runs["binary"],
               "--multiclass", tiny_runs["multiclass"], "--out", out_csv, "--device", "cpu")
    assert proc.returncode == 0 and "OpenCV" in proc.stderr
    assert pd.read_csv(out_csv).ImageId.tolist() == ["a.jpg", "b.jpg"]


@pytest.mark.slow
def test_eda_skips_and_show_refuses_bad_files(hostile, tmp_path):
    proc = run("eda", hostile, "--out", tmp_path / "report", "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Unreadable images skipped (5)" in html and html.count("over the limit") == 3
    for name in BOMBS:
        proc = run("show", hostile, name, "--out", tmp_path / "x.png")
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: ") and "over the limit of 1,638,400" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2  # one message (rich may wrap a long path)
    assert run("show", hostile, "a.jpg", "--out", tmp_path / "a.png").returncode == 0


def test_max_pixels_option_and_environment(hostile, tmp_path):
    root = make_dataset(tmp_path / "d", n_images=2)
    proc = run("--max-pixels", 409_599, "check", root)
    assert proc.returncode == 1 and " ".join(proc.stdout.split()).count("over the limit of 409,599") == 2
    assert run("--max-pixels", 409_600, "check", root).returncode == 0
    proc = run("--max-pixels", 0, "check", root)
    assert proc.returncode == 2 and "--max-pixels" in proc.stderr
    env_proc = subprocess.run([sys.executable, "-m", "steelinspect", "check", root], capture_output=True, text=True,
                              env={**__import__("os").environ, "STEELINSPECT_MAX_PIXELS": "1000"}, timeout=300)
    assert env_proc.returncode == 1 and "over the limit of 1,000" in " ".join(env_proc.stdout.split())


@pytest.mark.slow
@pytest.mark.parametrize("text", ["2 9223372036854775807", "100000000000000000000 5"])
def test_rle_past_int64_is_a_malformed_row_everywhere(tmp_path, text):
    root = make_dataset(tmp_path / "d", rows=[("a.jpg", 3, "1 5"), ("b.jpg", 1, text)])
    labels = root / "train.csv"
    proc = run("check", root)
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    assert "bad_rle" in out and "b.jpg class 1" in out
    for args in (("master", root, "--out", tmp_path / "m.csv"), ("eda", root, "--out", tmp_path / "r"),
                 ("show", root, "b.jpg", "--out", tmp_path / "b.png")):
        proc = run(*args)
        assert proc.returncode == 1, args
        assert f"{labels}, row 3" in " ".join(proc.stderr.split()), args
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.slow
def test_train_refuses_a_bad_image_before_the_first_epoch(synth_dir, tmp_path):
    data = Path(shutil.copytree(synth_dir, tmp_path / "data"))
    victim = sorted((data / "train_images").iterdir())[5]
    victim.write_bytes(b"corrupt: not an image any more")
    out = tmp_path / "run"
    proc = run("train", "binary", data, "--out", out, "--epochs", 1, "--image-size", "64x128", "--workers", 2,
               "--device", "cpu")
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())
    assert err.startswith(f"error: {victim}: not a readable image")
    assert "epoch" not in proc.stdout and not (out / "checkpoint.pt").exists()
