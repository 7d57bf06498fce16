"""Run the cascade over a labelled dataset and score it (steelinspect evaluate-cascade)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.infer.cascade import Cascade, PredictConfig, predict
from steelinspect.metrics.cascade import evaluate_cascade


def score_cascade(binary: str | Path, multiclass: str | Path, data: str | Path, batch_size: int = 16,
                  workers: int = 4, device: str = "auto", on_image: Callable[[int], None] | None = None) -> dict:
    layout = data_dir(data)
    master = build_master(data)
    config = PredictConfig(batch_size=batch_size, workers=workers, device=device)
    cascade = Cascade.from_runs(binary, multiclass, config)
    rows = pd.DataFrame(list(predict(layout.images, cascade, config, on_image=on_image)))
    return evaluate_cascade(rows, master)
