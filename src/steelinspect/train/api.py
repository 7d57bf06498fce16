"""The training library API a notebook calls (the CLI calls the same): train and evaluate."""

from __future__ import annotations

from steelinspect.runs.config import TrainConfig
from steelinspect.train.evaluate import evaluate
from steelinspect.train.loop import train

__all__ = ["TrainConfig", "train", "evaluate"]
