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
from steelinspect.runs.ensemble import Ensemble, load_model, member_dirs, store_params
from steelinspect.runs.store import check_not_trained_on, load_run, read_metrics

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


def _shown(paths) -> str | list[str]:
    return str(paths) if isinstance(paths, (str, Path)) else [str(p) for p in paths]


def _check_classifiers(runs: list, image_ids: list[str]) -> None:
    """A gate that trained on these images would score them too well: every member of every classifier is checked."""
    for run_dir in (d for r in runs for d in member_dirs(r)):
        check_not_trained_on(run_dir, image_ids, "the classifier run")


def _out_of_fold(seg: Ensemble, binary, multiclass, master, images: Path, grid: PostprocessGrid, class_gate: str,
                 config: PredictConfig, on_image) -> GatedSplit:
    """A --folds segmenter's validation side: fold k's images, segmented by member k and gated by the classifiers'
    member k (fold parents of the same K and seed, so none of the three trained on fold k)."""
    classifiers = [member_dirs(binary), member_dirs(multiclass)]
    if any(len(c) != len(seg.members) for c in classifiers):
        raise RunError(f"a --folds segmenter is tuned on its out-of-fold predictions, gated fold by fold: give "
                       f"--binary and --multiclass as --folds parents of the same {len(seg.members)} folds and "
                       "--seed", seg.run_dir)
    parts = []
    for member, bin_dir, multi_dir in zip(seg.members, *classifiers):
        ids = read_json(member.run_dir / SPLITS_FILE)["val"]
        for run_dir in (bin_dir, multi_dir):
            check_not_trained_on(run_dir, ids, "the classifier run")
        cascade = Cascade(load_run(bin_dir), load_run(multi_dir), config)
        parts.append(_score_split(ids, master, images, cascade, member, make_engine(member, config), grid,
                                  class_gate, config, on_image))
    return GatedSplit(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("dice", "predicted", "positive",
                                                                                 "keep")))


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
    its test split, and store both in the run (model.pt's post-processing, metrics.json's "gated").

    A --folds segment parent (an ensemble) is tuned on its out-of-fold predictions instead, member k on fold k
    gated by the classifiers' member k (`binary` and `multiclass` then fold parents of the same K and seed), its
    test split scored by the whole ensembles, the setting stored in its ensemble.json. `binary` and `multiclass`
    may be ensembles (a fold parent, or a list of run directories) for a single segment run too."""
    if class_gate not in GATES:
        raise ConfigError(f"--class-gate must be one of {', '.join(GATES)} for tuning, got {class_gate!r}")
    config = config or PredictConfig()
    config.validate()
    seg = load_model(segment)
    segment = Path(seg.run_dir)
    if seg.head != "segment":
        raise RunError(f"needs a segment run, this one is {seg.head!r}", segment)
    if isinstance(seg, Ensemble) and seg.parent is None:
        raise RunError("tune-gate stores the setting in the segment run: give one run or a --folds parent, not "
                       "several run directories", segment)
    master = build_master(data)
    splits = frames_from_ids(master, read_json(segment / SPLITS_FILE))
    grid = PostprocessGrid()
    images = data_dir(data).images
    test_ids = splits["test"].ImageId.tolist()
    val_ids = [] if isinstance(seg, Ensemble) else splits["val"].ImageId.tolist()
    if not test_ids or not (val_ids or isinstance(seg, Ensemble)):
        raise RunError("the segment run has no validation or test images to tune and score on", segment)
    _check_classifiers([binary, multiclass], val_ids + test_ids)
    cascade = Cascade.from_runs(binary, multiclass, config)
    engine = make_engine(seg, config)
    with torch.inference_mode():
        if isinstance(seg, Ensemble):  # tuned on the out-of-fold predictions, fold by fold
            val = _out_of_fold(seg, binary, multiclass, master, images, grid, class_gate, config, on_image)
        else:
            val = _score_split(val_ids, master, images, cascade, seg, engine, grid, class_gate, config, on_image)
        parts = {"val": val,
                 "test": _score_split(test_ids, master, images, cascade, seg, engine, grid, class_gate, config,
                                      on_image)}
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
    store_params(seg, postprocess=tuned.to_dict())
    metrics["gated"] = {**result.to_dict(), "binary": _shown(binary), "multiclass": _shown(multiclass),
                        "tuned_on": "out-of-fold predictions" if isinstance(seg, Ensemble) else "validation split"}
    write_json(metrics_file, metrics)
    return result
