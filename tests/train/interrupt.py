"""Stopping a training run at a known point, for the tests of --resume (train/testhooks.py)."""

from __future__ import annotations

import pytest

from steelinspect.runs.config import TrainConfig
from steelinspect.train import testhooks
from steelinspect.train.loop import train


def interrupted(monkeypatch, config: TrainConfig, after: int = 1) -> None:
    """Train `config` until it stops itself, as Ctrl-C stops it, right after epoch `after` is checkpointed."""
    monkeypatch.setenv(testhooks.ENV, str(after))
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.delenv(testhooks.ENV)
