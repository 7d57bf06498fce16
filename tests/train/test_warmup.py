"""--warmup: a linear learning-rate ramp over the first epochs, on top of the per-epoch cosine."""

from __future__ import annotations

import json

import pytest
import torch

from steelinspect.runs.config import TrainConfig
from steelinspect.train.loop import train
from steelinspect.train.warmup import Warmup
from tests.cli_runner import run_main
from tests.train.interrupt import interrupted


def _schedule(epochs: int, steps_per_epoch: int, warmup: Warmup) -> tuple[list[float], list[float]]:
    """The rate of every optimiser step, and each epoch's scheduled rate, as train/loop.py applies them."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=5e-5)
    steps, epoch_rates = [], []
    for _ in range(epochs):
        scheduled = [group["lr"] for group in optimizer.param_groups]
        epoch_rates.append(scheduled[0])
        for _ in range(steps_per_epoch):
            warmup.before_step(optimizer, scheduled)
            steps.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
        warmup.restore(optimizer, scheduled)
        cosine.step()
    return steps, epoch_rates


def test_the_ramp_multiplies_the_cosine_and_hands_it_back_unchanged():
    steps, rates = _schedule(3, 4, Warmup.of(1.5, 4))
    plain_steps, plain_rates = _schedule(3, 4, Warmup.of(0, 4))
    assert rates == plain_rates  # bit for bit: the cosine steps on from the rate it left
    assert plain_steps == [rate for rate in plain_rates for _ in range(4)]
    ramp = [min(1.0, k / 6) for k in range(1, 13)]  # 1.5 epochs of 4 steps
    assert steps == pytest.approx([rate * f for rate, f in zip(plain_steps, ramp)], rel=1e-12)
    assert steps[0] == pytest.approx(1e-3 / 6) and steps[6:] == plain_steps[6:]


def test_a_resumed_run_is_as_far_along_the_ramp_as_an_uninterrupted_one():
    resumed = Warmup.of(1.5, 4, start_epoch=1)
    assert (resumed.steps, resumed.done, resumed.active) == (6, 4, True)
    assert not Warmup.of(1.5, 4, start_epoch=2).active and not Warmup.of(0, 4).active
    assert Warmup.of(0.01, 4).steps == 1  # a ramp shorter than a step is one step


SMALL = dict(task="binary", epochs=2, batch_size=8, image_size=(64, 128), workers=0, arch="vgg", seed=0)


def _losses(run) -> list[float]:
    """Each epoch's training and validation loss, in one list."""
    return [h[key] for h in json.loads((run / "history.json").read_text()) for key in ("train_loss", "val_loss")]


def test_a_warmed_up_run_trains_otherwise_and_resumes_mid_ramp_as_if_never_stopped(synth_dir, tmp_path, monkeypatch):
    warm = train(TrainConfig(data=synth_dir, out=tmp_path / "warm", warmup=1.5, **SMALL), progress=False)
    plain = train(TrainConfig(data=synth_dir, out=tmp_path / "plain", **SMALL), progress=False)
    assert json.loads((warm / "config.json").read_text())["warmup"] == 1.5
    # The first epoch's updates are smaller, so the weights and losses differ from the run without it ...
    assert _losses(warm)[:2] != pytest.approx(_losses(plain)[:2], abs=1e-6)
    # ... while the recorded schedule (the cosine's rate of each epoch) is the same.
    rates = [[h["lr"] for h in json.loads((run / "history.json").read_text())] for run in (warm, plain)]
    assert rates[0] == rates[1]
    # Interrupted after epoch 1, in the middle of its 1.5-epoch ramp, then resumed: the same run.
    part = tmp_path / "part"
    interrupted(monkeypatch, TrainConfig(data=synth_dir, out=part, warmup=1.5, **SMALL))
    train(TrainConfig(data=synth_dir, out=part, warmup=1.5, resume=True, **SMALL), progress=False)
    assert _losses(part) == pytest.approx(_losses(warm), abs=1e-6)


def test_a_warmup_longer_than_the_run_is_refused_in_one_line(synth_dir, tmp_path):
    code, _, err = run_main("train", "segment", str(synth_dir), "--out", str(tmp_path / "r"), "--epochs", "2",
                            "--warmup", "3")
    assert code == 1 and "--warmup must lie in 0..2 epochs (--epochs), got 3" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_step_2_warms_up_by_default_and_nothing_else_does(tmp_path):
    def warmup(**kw):
        return TrainConfig(data=tmp_path, out=tmp_path / "r", **kw).warmup

    assert warmup(task="multiclass") == 1.0  # measured: docs/rare-classes.md, "--warmup E"
    assert warmup(task="multiclass", protocol="seed") == 0.0  # the capstone's protocol keeps its own training
    assert warmup(task="binary") == 0.0 and warmup(task="segment") == 0.0
    assert warmup(task="multiclass", warmup=0.25) == 0.25
    # A run written before --warmup existed trained without it, and resumes so.
    legacy = TrainConfig(task="multiclass", data=tmp_path, out=tmp_path / "r").to_dict()
    del legacy["warmup"]
    assert TrainConfig.from_dict(legacy).warmup == 0.0
