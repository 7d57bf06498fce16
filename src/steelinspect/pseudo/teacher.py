"""The teacher: probabilities for images, behind one small interface so an ensemble can take a run's place.

`Teacher.probabilities(paths)` streams (path, probabilities) through infer/'s prediction path (the bounded
prefetching loader, the run's own preprocessing, an inference engine): classifiers give one probability per
output (sigmoid; softmax for the single-label head), segmenters (4, 256, 1600) per-pixel probabilities at the
full image size, as `predict --segment` sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from steelinspect.errors import Problem
from steelinspect.infer.config import PredictConfig
from steelinspect.infer.engines import make_engine
from steelinspect.infer.loader import iter_batches
from steelinspect.postprocess.activations import sigmoid, softmax
from steelinspect.postprocess.segmenter import segment_probs, to_full_size
from steelinspect.runs.ensemble import load_model
from steelinspect.runs.store import LoadedRun


@dataclass
class Teacher:
    run: LoadedRun
    config: PredictConfig

    @classmethod
    def from_run(cls, run_dir: str | Path, config: PredictConfig) -> "Teacher":
        """A run directory, or a --folds parent (its members' probabilities averaged, as predict averages them)."""
        return cls(load_model(run_dir), config)

    @property
    def head(self) -> str:
        return self.run.head

    def describe(self) -> dict:
        """What pseudo.json records of the teacher."""
        return {"run": str(self.run.run_dir), "head": self.run.head, "arch": self.run.arch,
                "weights_id": self.run.weights_id}

    def probabilities(self, paths: list[Path], on_problem: Callable[[Problem], None] | None = None,
                      on_image: Callable[[int], None] | None = None) -> Iterator[tuple[Path, np.ndarray]]:
        """(path, probabilities) for every readable image, in order; unreadable ones go to `on_problem`."""
        engine = make_engine(self.run, self.config)
        prep = self.run.preprocess
        for batch in iter_batches(paths, [prep], self.config.batch_size, self.config.workers,
                                  on_problem=on_problem, on_image=on_image):
            x = batch.input(prep)
            if self.run.head == "segment":
                probs = [to_full_size(p) for p in segment_probs(engine, x)]
            else:
                logits = engine(x).astype(np.float32)
                probs = softmax(logits) if self.run.head == "multiclass" else sigmoid(logits)
            yield from zip(batch.paths, probs)
