"""Post-processing tuned together with the classifiers that gate the segmenter (the top solutions' recipe).

Training tunes the segmenter's thresholds and minimum areas on its own, so every false positive counts. At
prediction the classifiers gate the segmenter (no masks on an image step 1 calls clean; with the class gate
"drop", only the classes step 2 chose), which removes most false positives: settings tuned without the gate are
then too cautious. `tune_with_gate` re-tunes them on the segment run's validation split with the gate applied,
scores its test split the same way, and stores the result in the segment run.

Per image the segmenter's probabilities are scored once for every candidate setting (postprocess/grid.py); the
gate then replaces a gated-out (image, class) pair's Dice by what an empty prediction scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.layout import data_dir
from steelinspect.data.master import RLE_COLUMNS, build_master
from steelinspect.data.splits import frames_from_ids
from steelinspect.errors import ConfigError, RunError
from steelinspect.infer.cascade import Cascade, PredictConfig, row_classes
from steelinspect.infer.engines import make_engine
from steelinspect.infer.loader import iter_batches
from steelinspect.io import read_json, write_json
from steelinspect.metrics.dice import DiceReport
from steelinspect.postprocess.grid import PostprocessGrid
from steelinspect.postprocess.masks import PostProcess
from steelinspect.postprocess.segmenter import segment_probs, to_full_size
from steelinspect.runs.files import METRICS_FILE, SPLITS_FILE
from steelinspect.runs.store import check_not_trained_on, load_run, read_metrics, update_model_params

GATES = ("drop", "off")  # "off": step 1's gate alone


@dataclass
class GatedSplit:
    """One split: per image the Dice of every candidate setting, and which (image, class) pairs the gate keeps."""

    dice: np.ndarray  # (N, 4, T, M)
    predicted: np.ndarray  # bool (N, 4, T, M)
    positive: np.ndarray  # bool (N, 4)
    keep: np.ndarray  # bool (N, 4)

    def gated(self) -> tuple[np.ndarray, np.ndarray]:
        """Dice and 'predicted' once the gate has emptied the pairs it drops."""
        keep = self.keep[:, :, None, None]
        empty = (~self.positive)[:, :, None, None].astype(self.dice.dtype)
        return np.where(keep, self.dice, empty), self.predicted & keep

    def report(self, grid: PostprocessGrid, post: PostProcess, gate: bool) -> DiceReport:
        dice, predicted = self.gated() if gate else (self.dice, self.predicted)
        return grid.report(dice, self.positive, predicted, post)


@dataclass
class GatedTuning:
    postprocess: PostProcess  # tuned with the gate (its `gate` field says which)
    reports: dict[str, DiceReport]  # test split: "alone" (stored setting, no gate), "gated" (stored setting,
    #                                 gate), "gated_tuned" (this setting, gate); and "val_gated_tuned"

    def to_dict(self) -> dict:
        return {"postprocess": self.postprocess.to_dict(), **{k: r.to_dict() for k, r in self.reports.items()}}


def _score_split(ids: list[str], master, images: Path, cascade: Cascade, seg, engine, grid: PostprocessGrid,
                 class_gate: str, config: PredictConfig, on_image) -> GatedSplit:
    truth_rles = master.set_index("ImageId")[RLE_COLUMNS]
    dice, predicted, positive, keep = [], [], [], []
    problems = []
    paths = [images / i for i in ids]
    for batch in iter_batches(paths, [*cascade.preprocesses, seg.preprocess], config.batch_size, config.workers,
                              on_problem=problems.append, on_image=on_image):
        rows = cascade.predict_batch(batch)
        probs = segment_probs(engine, batch.input(seg.preprocess))
        for image_id, row, p in zip(batch.image_ids, rows, probs):
            truth = rle.build_mask(list(truth_rles.loc[image_id]))
            scores = grid.score_image(to_full_size(p), truth)
            chosen = set(row_classes(row))
            dice.append(scores.dice)
            predicted.append(scores.predicted)
            positive.append(scores.positive)
            keep.append([row["has_defect"] and (class_gate == "off" or c in chosen) for c in CLASS_IDS])
    if problems:
        raise RunError(f"{len(problems)} image(s) of the split could not be read, e.g. {problems[0]}", images)
    return GatedSplit(np.stack(dice), np.stack(predicted), np.stack(positive), np.array(keep, dtype=bool))


def tune_with_gate(
    segment: str | Path,
    binary: str | Path,
    multiclass: str | Path,
    data: str | Path,
    class_gate: str = "drop",
    config: PredictConfig | None = None,
    on_image: Callable[[int], None] | None = None,
) -> GatedTuning:
    """Tune the segment run's post-processing on its validation split with the classifiers' gate applied, score
    its test split, and store both in the run (model.pt's post-processing, metrics.json's "gated")."""
    if class_gate not in GATES:
        raise ConfigError(f"--class-gate must be one of {', '.join(GATES)} for tuning, got {class_gate!r}")
    config = config or PredictConfig()
    config.validate()
    segment = Path(segment)
    seg = load_run(segment)
    if seg.head != "segment":
        raise RunError(f"needs a segment run, this one is {seg.head!r}", segment)
    master = build_master(data)
    splits = frames_from_ids(master, read_json(segment / SPLITS_FILE))
    ids = {name: splits[name].ImageId.tolist() for name in ("val", "test")}
    if not ids["val"] or not ids["test"]:
        raise RunError("the segment run has no validation or test images to tune and score on", segment)
    for run_dir in (binary, multiclass):  # a gate that saw these images would score them too well
        check_not_trained_on(run_dir, ids["val"] + ids["test"], "the classifier run")
    cascade = Cascade.from_runs(binary, multiclass, config)
    engine = make_engine(seg, config)
    grid = PostprocessGrid()
    images = data_dir(data).images
    with torch.inference_mode():
        parts = {name: _score_split(split_ids, master, images, cascade, seg, engine, grid, class_gate, config, on_image)
                 for name, split_ids in ids.items()}
    dice, _ = parts["val"].gated()
    tuned = grid.best(dice.mean(axis=0))
    tuned = PostProcess(tuned.thresholds, tuned.min_areas, gate=class_gate)
    metrics_file = segment / METRICS_FILE
    metrics = read_metrics(segment) if metrics_file.is_file() else {}
    alone = PostProcess.from_dict(metrics.get("postprocess") or seg.postprocess or {})  # as tuned by training
    result = GatedTuning(tuned, {
        "alone": parts["test"].report(grid, alone, gate=False),
        "gated": parts["test"].report(grid, alone, gate=True),
        "gated_tuned": parts["test"].report(grid, tuned, gate=True),
        "val_gated_tuned": parts["val"].report(grid, tuned, gate=True),
    })
    update_model_params(segment, postprocess=tuned.to_dict())
    metrics["gated"] = {**result.to_dict(), "binary": str(binary), "multiclass": str(multiclass)}
    write_json(metrics_file, metrics)
    return result
