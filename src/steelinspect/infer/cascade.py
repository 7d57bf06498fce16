"""The two-step cascade: step 1 says defect or clean, step 2 says which class(es).

`predict()` streams rows (one dict per readable image) so any number of images fits in flat memory;
`write_predictions()` streams them to CSV through a temporary file.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import list_images
from steelinspect.errors import Problem, RunError
from steelinspect.infer.config import PredictConfig
from steelinspect.infer.engines import make_engine
from steelinspect.infer.loader import Batch, iter_batches
from steelinspect.io import atomic_write
from steelinspect.postprocess.activations import sigmoid, softmax
from steelinspect.runs.ensemble import load_model
from steelinspect.runs.store import LoadedRun

PREDICTION_COLUMNS = ["ImageId", "p_defect", "has_defect", *(f"p_class_{c}" for c in CLASS_IDS), "classes"]


def decide_classes(task: str, probs: np.ndarray, thresholds: list[float]) -> list[int]:
    """Step 2's classes for one image the binary step called defective. Multi-label: every class over its
    threshold, or the most probable one when none is (step 1 said there is a defect); softmax: the argmax."""
    if task == "multilabel":
        chosen = [c for c, p, t in zip(CLASS_IDS, probs, thresholds) if p >= t]
        return chosen or [CLASS_IDS[int(np.argmax(probs))]]
    return [CLASS_IDS[int(np.argmax(probs))]]


def defect_threshold(binary: LoadedRun) -> float:
    """Step 1's decision threshold: the one tuned on validation, 0.5 for a run that has none."""
    return binary.thresholds[0] if binary.thresholds else 0.5


def row_classes(row: dict) -> list[int]:
    """The class ids of a prediction row's "classes" field ("1 3" -> [1, 3]; "" when clean -> [])."""
    return [int(c) for c in str(row["classes"]).split()]


class Cascade:
    """Binary + multiclass runs, each on its own engine and preprocessing."""

    def __init__(self, binary: LoadedRun, multiclass: LoadedRun, config: PredictConfig):
        if binary.head != "binary":
            raise RunError(f"--binary needs a binary run, this one is {binary.head!r}", binary.run_dir)
        if multiclass.head not in ("multiclass", "multilabel"):
            raise RunError(f"--multiclass needs a multiclass run, this one is {multiclass.head!r}", multiclass.run_dir)
        config.validate()
        self.binary, self.multiclass = binary, multiclass
        self.binary_engine = make_engine(binary, config)
        self.multi_engine = make_engine(multiclass, config)

    @classmethod
    def from_runs(cls, binary_dir: str | Path, multiclass_dir: str | Path, config: PredictConfig) -> "Cascade":
        return cls(load_model(binary_dir), load_model(multiclass_dir), config)

    @property
    def notes(self) -> list[str]:
        return [note for e in (self.binary_engine, self.multi_engine) if (note := getattr(e, "note", ""))]

    @property
    def preprocesses(self):
        return [self.binary.preprocess, self.multiclass.preprocess]

    def predict_batch(self, batch: Batch) -> list[dict]:
        p_defect = sigmoid(self.binary_engine(batch.input(self.binary.preprocess)))[:, 0]
        logits = self.multi_engine(batch.input(self.multiclass.preprocess))
        p_class = softmax(logits) if self.multiclass.head == "multiclass" else sigmoid(logits)
        threshold = defect_threshold(self.binary)
        rows = []
        for image_id, path, pd_, pc in zip(batch.image_ids, batch.paths, p_defect, p_class):
            has_defect = bool(pd_ >= threshold)
            classes = decide_classes(self.multiclass.head, pc, self.multiclass.thresholds) if has_defect else []
            row = {"ImageId": image_id, "p_defect": float(pd_), "has_defect": has_defect}
            row.update({f"p_class_{c}": float(p) for c, p in zip(CLASS_IDS, pc)})
            row["classes"] = " ".join(map(str, classes))
            row["path"] = str(path)  # not a CSV column (writers ignore it); the inspection log keeps it
            rows.append(row)
        return rows


@dataclass
class PredictStats:
    images: int = 0
    defects: int = 0
    seconds: float = 0.0
    skipped: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. why --engine auto passed over a model.onnx

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def skipped(stats: PredictStats, on_problem: Callable[[Problem], None] | None) -> Callable[[Problem], None]:
    """The loader's on_problem: the problem listed in `stats`, then handed on."""
    def note(problem: Problem) -> None:
        stats.skipped.append(problem)
        if on_problem is not None:
            on_problem(problem)

    return note


def predict(
    images: str | Path | list,
    cascade: Cascade,
    config: PredictConfig,
    stats: PredictStats | None = None,
    on_image: Callable[[int], None] | None = None,
    on_problem: Callable[[Problem], None] | None = None,
) -> Iterator[dict]:
    """Prediction rows for every readable image of a folder or list of files (unreadable ones land in
    stats.skipped, and are handed to `on_problem` as they are found)."""
    config.validate()
    paths = list_images(images)
    stats = stats if stats is not None else PredictStats()
    stats.notes += cascade.notes
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in iter_batches(paths, cascade.preprocesses, config.batch_size, config.workers,
                                  on_problem=skipped(stats, on_problem), on_image=on_image):
            for row in cascade.predict_batch(batch):
                stats.images += 1
                stats.defects += row["has_defect"]
                yield row
            stats.seconds = time.perf_counter() - start


class PredictionWriter:
    """Streams prediction rows into a temporary CSV renamed over `path` only when the block ends without error
    (floats with 6 decimals; keys outside `columns`, such as "path", are left out).

        with PredictionWriter("predictions.csv") as out:
            out.add(row)
    """

    def __init__(self, path: str | Path, columns: list[str] = PREDICTION_COLUMNS):
        self.path, self.columns = Path(path), columns
        self.rows = 0
        self._context = None

    def __enter__(self) -> "PredictionWriter":
        self._context = atomic_write(self.path)
        tmp = self._context.__enter__()
        self._fh = tmp.open("w", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=self.columns, extrasaction="ignore")
        self._writer.writeheader()
        return self

    def add(self, row: dict) -> None:
        self._writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
        self.rows += 1

    def __exit__(self, *exc) -> bool:
        self._fh.close()
        return self._context.__exit__(*exc)


def write_predictions(rows: Iterable[dict], path: str | Path, columns: list[str] = PREDICTION_COLUMNS) -> int:
    """Stream rows to CSV (temp file, then rename). Returns the number of rows."""
    with PredictionWriter(path, columns) as out:
        for row in rows:
            out.add(row)
    return out.rows
