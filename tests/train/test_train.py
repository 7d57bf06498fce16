"""Training end to end on a small synthetic set: run directory, resume, multi-process, CLI errors."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import replace

import pytest
import torch

from steelinspect.errors import ConfigError, RunError
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.store import load_run
from steelinspect.train.evaluate import evaluate
from steelinspect.train import testhooks
from steelinspect.train.loop import train
from tests.cli_runner import run_cli, run_main
from tests.train.interrupt import interrupted

pytestmark = pytest.mark.slow
SMALL = dict(epochs=2, batch_size=8, image_size=(64, 128), workers=0, arch="vgg", seed=0)
METRIC_KEYS = {"loss", "accuracy", "precision", "recall", "f1", "roc_auc", "per_class", "confusion_matrix"}


@pytest.fixture(scope="module")
def binary_run(synth_dir, tmp_path_factory):
    return train(TrainConfig(task="binary", data=synth_dir, out=tmp_path_factory.mktemp("r") / "bin", **SMALL), progress=False)


def test_run_directory(binary_run):
    for name in ("model.pt", "config.json", "history.json", "curves.png", "metrics.json", "splits.json", "checkpoint.pt"):
        assert (binary_run / name).is_file(), name
    metrics = json.loads((binary_run / "metrics.json").read_text())
    assert set(metrics) == {"train", "val", "test", "thresholds"}
    for split in ("train", "val", "test"):
        assert METRIC_KEYS <= set(metrics[split])
    history = json.loads((binary_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    for key in ("train_loss", "val_loss", "train_f1", "val_f1", "val_accuracy", "val_precision", "val_recall", "lr", "seconds"):
        assert key in history[0]
    blob = torch.load(binary_run / "model.pt", weights_only=True)
    assert blob["arch"] == "vgg" and blob["head"] == "binary" and blob["thresholds"] == metrics["thresholds"]
    config = TrainConfig.read(binary_run / "config.json")
    assert config.image_size == (64, 128) and config.task == "binary"


def test_load_run_and_evaluate_reproduce_metrics(binary_run, synth_dir):
    run = load_run(binary_run)
    assert run.head == "binary" and run.preprocess.size == (64, 128) and len(run.thresholds) == 1
    with torch.no_grad():
        assert run.model(torch.zeros(2, 1, 64, 128)).shape == (2, 1)
    again = evaluate(binary_run, synth_dir, device="cpu", workers=0)
    stored = json.loads((binary_run / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        assert again[split]["loss"] == pytest.approx(stored[split]["loss"], abs=1e-5)
        assert again[split]["f1"] == pytest.approx(stored[split]["f1"])


def test_evaluate_on_a_moved_training_set_leaves_the_training_images_out(binary_run, synth_dir, tmp_path):
    import shutil

    moved = shutil.copytree(synth_dir, tmp_path / "moved")  # the training set under another path
    got = evaluate(binary_run, moved, device="cpu", workers=0)
    splits = json.loads((binary_run / "splits.json").read_text())
    assert set(got) >= {"all", "trained_left_out"} and got["trained_left_out"] == len(splits["train"])
    assert got["all"]["n"] == len(splits["val"]) + len(splits["test"])  # the images the run never trained on
    # Another set with none of its images: everything is scored, nothing is said to be left out.
    other = tmp_path / "other"
    from steelinspect.data.synth import generate

    generate(other, images=12, seed=7, workers=1)
    got = evaluate(binary_run, other, device="cpu", workers=0)
    assert got["all"]["n"] == 12 and "trained_left_out" not in got
    code, stdout, err = run_main("evaluate", binary_run, "--data", moved, "--out", tmp_path / "e.json", "--device",
                                 "cpu", "--workers", "0")
    assert code == 0 and f"left out {len(splits['train'])} image(s) the run trained on" in stdout, err


def test_refuses_to_overwrite_a_run(binary_run, synth_dir):
    with pytest.raises(ConfigError, match="already holds a run"):
        train(TrainConfig(task="binary", data=synth_dir, out=binary_run, **SMALL), progress=False)
    with pytest.raises(RunError, match="run directory not found"):
        load_run(binary_run.parent / "missing")


def test_init_starts_step_two_from_step_one(binary_run, synth_dir, tmp_path):
    from steelinspect.models.factory import build_model
    from steelinspect.runs.store import init_from_run

    source = torch.load(binary_run / "model.pt", weights_only=True)["state_dict"]
    model = build_model("vgg", 4)
    splits = json.loads((binary_run / "splits.json").read_text())
    loaded = init_from_run(model, binary_run, "vgg", held_out=splits["val"] + splits["test"])
    state = model.state_dict()
    assert 0 < loaded < len(state)  # everything but the last layer (1 output there, 4 here)
    assert torch.equal(state["features.0.0.weight"], source["features.0.0.weight"])
    assert torch.equal(state["head.1.weight"], source["head.1.weight"])
    assert source["head.4.weight"].shape == (1, 128) and state["head.4.weight"].shape == (4, 128)
    # Through training: same seed and data, so step 2's held-out images are held out of step 1 too.
    run_dir = train(TrainConfig(task="multiclass", data=synth_dir, out=tmp_path / "mc", init=binary_run,
                                **{**SMALL, "epochs": 1}), progress=False)
    assert TrainConfig.read(run_dir / "config.json").init == binary_run
    with pytest.raises(RunError, match="validation/test images"):
        train(TrainConfig(task="multiclass", data=synth_dir, out=tmp_path / "leak", init=binary_run,
                          **{**SMALL, "seed": 1}), progress=False)
    with pytest.raises(RunError, match="is a vgg model"):
        init_from_run(build_model("resnet18", 4), binary_run, "resnet18", held_out=[])


@pytest.mark.parametrize("protocol, head", [("full", "multilabel"), ("seed", "multiclass")])
def test_step_two_heads(synth_dir, tmp_path, protocol, head):
    run_dir = train(TrainConfig(task="multiclass", data=synth_dir, out=tmp_path / "mc", protocol=protocol, per_class=6,
                                **{**SMALL, "epochs": 1}), progress=False)
    run = load_run(run_dir)
    assert run.head == head
    assert len(run.thresholds) == (4 if head == "multilabel" else 0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]["per_class"]) <= {"1", "2", "3", "4"}


def _assert_same_result(a_dir, b_dir):
    """Two runs ended with the same weights: the same history and metrics (up to float noise)."""
    ha = json.loads((a_dir / "history.json").read_text())
    hb = json.loads((b_dir / "history.json").read_text())
    assert [h["epoch"] for h in hb] == [h["epoch"] for h in ha]
    for x, y in zip(ha, hb):
        assert (y["train_loss"], y["val_loss"]) == pytest.approx((x["train_loss"], x["val_loss"]), abs=1e-6)
    a = json.loads((a_dir / "metrics.json").read_text())
    b = json.loads((b_dir / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        assert b[split]["loss"] == pytest.approx(a[split]["loss"], abs=1e-6)
        assert b[split]["f1"] == a[split]["f1"]
    assert a["thresholds"] == b["thresholds"]


def test_resume_after_interruption_matches_uninterrupted(binary_run, synth_dir, tmp_path, monkeypatch):
    # Deterministic: the run sends itself SIGINT right after epoch 1 is checkpointed (train/testhooks.py).
    part = tmp_path / "part"
    config = dict(task="binary", data=synth_dir, out=part, **SMALL)
    interrupted(monkeypatch, TrainConfig(**config))
    assert [h["epoch"] for h in json.loads((part / "history.json").read_text())] == [1]
    assert (part / "checkpoint.pt").is_file() and not (part / "metrics.json").exists()
    # Other settings are refused, naming what the run had (a default changed since it began is the usual cause).
    with pytest.raises(ConfigError, match=r"--lr 0.001 in the run, 0.002 now; --paste 0.0 in the run, 0.5 now$"):
        train(TrainConfig(**{**config, "lr": 2e-3}, paste=0.5, resume=True), progress=False)
    assert [h["epoch"] for h in json.loads((part / "history.json").read_text())] == [1]
    train(TrainConfig(**config, resume=True), progress=False)
    _assert_same_result(binary_run, part)  # binary_run: the same settings, never interrupted


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def test_ctrl_c_exits_130_and_leaves_a_run_to_resume(binary_run, synth_dir, tmp_path):
    """The real signal from outside, as a user's Ctrl-C: the run waits after epoch 1 until it comes (never races)."""
    args = ["train", "binary", synth_dir, "--out", tmp_path / "part", "--epochs", "2", "--batch-size", "8",
            "--image-size", "64x128", "--arch", "vgg", "--seed", "0", "--workers", "0", "--device", "cpu"]
    env = {**os.environ, testhooks.ENV: "1:wait", "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "stderr.txt", "w") as stderr:  # a file, not a pipe: nothing blocks on a full pipe
        part = subprocess.Popen([sys.executable, "-m", "steelinspect", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=stderr, text=True, env=env)
        watchdog = threading.Timer(240, part.kill)  # bounds the wait below if the run hangs before epoch 1
        watchdog.start()
        try:
            lines = []
            for line in part.stdout:  # blocks until the run reports an epoch, or ends
                lines.append(ANSI.sub("", line))
                if lines[-1].startswith("epoch 1/2:"):
                    break
            assert lines and lines[-1].startswith("epoch 1/2:"), (
                f"the run never reported epoch 1 (ended, or killed after 240 s): {lines} "
                f"{(tmp_path / 'stderr.txt').read_text()[-2000:]}")
            part.send_signal(signal.SIGINT)
            part.stdout.read()
            code = part.wait(timeout=60)
        finally:
            watchdog.cancel()
            if part.poll() is None:
                part.kill()
    err = (tmp_path / "stderr.txt").read_text()
    assert code == 130 and "Traceback" not in err, err[-2000:]
    assert (tmp_path / "part" / "checkpoint.pt").is_file() and not (tmp_path / "part" / "metrics.json").exists()

    # What Ctrl-C left resumes to the uninterrupted result (here, in-process: `--resume` only sets config.resume).
    train(replace(TrainConfig.read(tmp_path / "part" / "config.json"), resume=True), progress=False)
    _assert_same_result(binary_run, tmp_path / "part")


def test_two_processes_match_one(binary_run, synth_dir, tmp_path):
    common = ["binary", str(synth_dir), "--epochs", "2", "--batch-size", "8", "--image-size", "64x128", "--arch", "vgg",
              "--seed", "0", "--workers", "0", "--device", "cpu"]
    # --standalone: the rendezvous store listens on a port the system picks and holds, so two suites never collide.
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "steelinspect", "train", *common, "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert (tmp_path / "ddp" / "splits.json").read_text() == (binary_run / "splits.json").read_text()
    a = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    b = json.loads((binary_run / "metrics.json").read_text())  # one process, the same settings
    # Same data, same global batches and initialisation; BatchNorm sees per-process batches, hence a tolerance.
    for split in ("val", "test"):
        assert a[split]["n"] == b[split]["n"]
        assert a[split]["loss"] == pytest.approx(b[split]["loss"], abs=0.05)


def test_cli_errors_are_one_line(tmp_path, synth_dir):
    # One through the real console script in a fresh interpreter, the others through the same entry point here.
    proc = run_cli("train", "binary", tmp_path / "none", "--out", tmp_path / "r")
    assert proc.returncode == 1 and "data folder not found" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for args, words in [
        (["train", "binary", synth_dir, "--out", tmp_path / "r", "--image-size", "100x100"], "multiples of 32"),
        (["train", "binary", synth_dir, "--out", tmp_path / "r", "--arch", "alexnet", "--epochs", "1"], "unknown --arch"),
        (["train", "segment", synth_dir, "--out", tmp_path / "r", "--arch", "vgg"], "--arch 'vgg' cannot train segment"),
        (["train", "binary", synth_dir, "--out", tmp_path / "r", "--arch", "unet_resnet18"], "cannot train binary"),
        (["train", "binary", synth_dir, "--out", tmp_path / "r2", "--resume"], "nothing to resume"),
        (["evaluate", tmp_path / "nope", "--data", synth_dir], "run directory not found"),
    ]:
        code, _, err = run_main(*args)
        assert code == 1 and words in err and len(err.strip().splitlines()) == 1, (args, err)


def test_library_defaults_follow_the_task(tmp_path):
    segment = TrainConfig(task="segment", data=tmp_path, out=tmp_path / "s")
    assert (segment.arch, segment.image_size, segment.batch_size) == ("unet_resnet18", (256, 1600), 8)
    binary = TrainConfig(task="binary", data=tmp_path, out=tmp_path / "b")
    assert (binary.arch, binary.image_size, binary.batch_size) == ("vgg", (256, 512), 16)
    assert TrainConfig.from_dict(segment.to_dict()) == segment


def test_interrupt_hook_does_nothing_at_other_epochs_and_refuses_a_bad_setting(monkeypatch):
    monkeypatch.setenv(testhooks.ENV, "2")
    testhooks.after_epoch(1)  # not its epoch: returns, no signal
    monkeypatch.setenv(testhooks.ENV, "one")
    with pytest.raises(ConfigError, match="expected N or N:wait"):
        testhooks.after_epoch(1)


def test_a_run_without_a_test_split_finishes_and_says_so(synth_dir, tmp_path):
    """A few real images need every one for training and validation (bench/fewshot.py): test_fraction 0."""
    said = []
    run_dir = train(TrainConfig(task="binary", data=synth_dir, out=tmp_path / "b", test_fraction=0.0,
                                **{**SMALL, "epochs": 1}), progress=False, log=said.append)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    splits = json.loads((run_dir / "splits.json").read_text())
    assert metrics["test"] is None and splits["test"] == [] and metrics["val"]["f1"] is not None
    assert said[-1].startswith("val f1 ")
