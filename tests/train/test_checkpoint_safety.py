"""Every torch file steelinspect reads loads with weights_only=True: a hostile pickle is refused in one line,
never run; the checkpoint's RNG state survives as tensors and plain values."""

import dataclasses
import os
import pickle
import random
import shutil

import numpy as np
import pytest
import torch

from steelinspect.errors import RunError
from steelinspect.io import write_json
from steelinspect.runs.store import load_checkpoint, load_run
from steelinspect.runs.config import TrainConfig
from steelinspect.train.rng_state import get_rng_state, set_rng_state
from tests.cli_runner import run_cli


class _Touch:
    """Unpickling this calls os.system: what a hostile run file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile(path, marker, legacy=False):
    payload = {"format": 1, "state_dict": {}, "model": _Touch(marker)}
    if legacy:  # torch.load reads plain pickles too
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    else:
        torch.save(payload, path)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture
def resumable(tiny_runs, tmp_path):
    """A copy of the tiny binary run whose config names its new place, so `train --resume` reaches the load."""
    run = shutil.copytree(tiny_runs["binary"], tmp_path / "run")
    config = TrainConfig.read(run / "config.json")
    write_json(run / "config.json", dataclasses.replace(config, out=run).to_dict())
    return run, config


@pytest.mark.parametrize("legacy", [False, True])
def test_hostile_checkpoint_is_refused_not_run(resumable, tmp_path, legacy):
    run, config = resumable
    marker = tmp_path / "pwned"
    _hostile(run / "checkpoint.pt", marker, legacy)
    with pytest.raises(RunError) as caught:
        load_checkpoint(run)
    message = str(caught.value)
    assert not marker.exists()
    assert message.startswith(str(run / "checkpoint.pt")) and "not a steelinspect checkpoint" in message
    assert "refused without running it" in message and "\n" not in message
    assert legacy or "posix.system" in message  # a protocol-4 pickle names no global before it is refused


@pytest.mark.slow
def test_train_resume_refuses_a_hostile_checkpoint_in_one_line(resumable, tmp_path):
    run, config = resumable
    marker = tmp_path / "pwned"
    _hostile(run / "checkpoint.pt", marker)
    h, w = config.image_size
    proc = run_cli("train", "binary", config.data, "--out", run, "--resume", "--epochs", config.epochs,
                   "--batch-size", config.batch_size, "--image-size", f"{h}x{w}", "--workers", "0",
                   "--arch", config.arch, "--seed", config.seed, "--device", "cpu")
    assert proc.returncode == 1, proc.stderr
    assert not marker.exists()
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and f"{run / 'checkpoint.pt'}: not a steelinspect checkpoint" in lines[0], proc.stderr


def test_checkpoint_loads_with_weights_only(tiny_runs):
    state = torch.load(tiny_runs["binary"] / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng"} <= set(state)
    assert load_checkpoint(tiny_runs["binary"])["epoch"] == 0


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)
    torch.save({"rng": get_rng_state()}, tmp_path / "rng.pt")
    first = (torch.rand(4).tolist(), np.random.standard_normal(4).tolist(), [random.gauss(0, 1) for _ in range(4)])
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(4).tolist(), np.random.standard_normal(4).tolist(), [random.gauss(0, 1) for _ in range(4)])
    assert first == again


def test_model_file_refusals_are_one_line_naming_the_file(tiny_runs, tmp_path):
    run = shutil.copytree(tiny_runs["binary"], tmp_path / "run")
    marker = tmp_path / "pwned"
    _hostile(run / "model.pt", marker)
    with pytest.raises(RunError, match=r"model\.pt: not a steelinspect model file \(it holds posix\.system"):
        load_run(run)
    assert not marker.exists()
    (run / "model.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(RunError) as caught:
        load_run(run)
    assert "not a steelinspect model file" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_cli_model_file_refusal_is_one_line(tiny_runs, synth_dir, tmp_path):
    run = shutil.copytree(tiny_runs["binary"], tmp_path / "run")
    marker = tmp_path / "pwned"
    _hostile(run / "model.pt", marker)
    proc = run_cli("evaluate", run, "--data", synth_dir)
    assert proc.returncode == 1 and not marker.exists()
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and f"{run / 'model.pt'}: not a steelinspect model file" in lines[0], proc.stderr
