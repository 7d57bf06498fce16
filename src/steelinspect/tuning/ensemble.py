"""`steelinspect ensemble RUN RUN ... --out PARENT`: classifier runs that share a validation split, made one model
whose thresholds are tuned on that split.

Runs given together to `predict` are averaged with their thresholds averaged too, because nothing was tuned for
the ensemble. Runs trained on one DATA_DIR with one split (the same --seed and --protocol; any --arch, --size or
--tile-width) can do better: the ensemble's probabilities on the validation split they share are what its
thresholds are tuned on, as `train` tunes a single run's, and the test split scores it beside each member.

The parent is an ensemble like a --folds parent (runs/ensemble.py), so every command that takes a run takes it:
PARENT/
  ensemble.json  the members (paths relative to PARENT) and the thresholds tuned for the ensemble
  config.json    the first member's TrainConfig (the data, head and seed they share)
  splits.json    "train": every image some member trained on (the training-data guard), "val", "test": shared
  metrics.json   the ensemble's validation and test metrics, each member's own test score beside
Members at different sizes (a whole strip at 128x416 and tiles of the full 256x1600 strip) are fed their own size
inside the ensemble (runs/ensemble.member_input).

--folds parents (`train ... --folds K` with one --seed, so with the same folds) combine too, fold by fold: fold k
of every parent never trained on fold k's images, so together they predict them out of fold, and the ensemble's
thresholds are tuned on those out-of-fold predictions of every non-test image, not on one validation split (a
rare class has a few images in a validation split, and all of them out of fold). The folder then lists every
parent's K members, "tuned_on" says which predictions, and metrics.json holds "oof" in place of "val".
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.data.splits import frames_from_ids
from steelinspect.device import resolve_device
from steelinspect.errors import ConfigError, RunError
from steelinspect.io import atomic_dir, read_json, write_json
from steelinspect.runs.ensemble import Ensemble, is_parent, load_model, read_ensemble, write_ensemble
from steelinspect.runs.files import CONFIG_FILE, ENSEMBLE_FILE, METRICS_FILE, SPLITS_FILE
from steelinspect.runs.store import LoadedRun, read_metrics
from steelinspect.train.folds import collect, merge_fold_parts
from steelinspect.train.tasks import make_task

CLASSIFIER_HEADS = ("binary", "multiclass", "multilabel")


def _shared_splits(runs: Sequence[LoadedRun]) -> dict:
    """The split every member was trained with, or one line naming the member that differs."""
    first = runs[0]
    splits = read_json(first.run_dir / SPLITS_FILE)
    for run in runs[1:]:
        if not run.trained_on(first.config.data):
            raise RunError(f"trained on {run.config.data}, not on {first.config.data} as {first.run_dir} was: an "
                           "ensemble is tuned on the validation split its members share", run.run_dir)
        other = read_json(run.run_dir / SPLITS_FILE)
        for name in ("val", "test"):
            if sorted(other[name]) != sorted(splits[name]):
                raise RunError(f"its {name} split differs from {first.run_dir}'s (another --seed or --protocol?): "
                               "an ensemble is tuned on the validation split its members share", run.run_dir)
    return splits


def combine_runs(run_dirs: Sequence[str | Path], out: str | Path, device: str = "auto", batch_size: int = 16,
                 workers: int = 2, say: Callable[[str], None] = lambda _msg: None) -> Path:
    """Write an ensemble parent at `out` for the classifier runs `run_dirs` (see the module doc); returns it."""
    run_dirs = [Path(d) for d in run_dirs]
    if len(run_dirs) < 2:
        raise ConfigError("an ensemble needs at least two run directories")
    out = Path(os.path.abspath(out))
    if out in {Path(os.path.abspath(d)) for d in run_dirs}:
        raise ConfigError("--out is one of the members; choose a new folder for the ensemble", out)
    dev = resolve_device(device)
    folds = [_fold_count(d) for d in run_dirs]
    if any(folds):
        if not all(folds):
            plain = run_dirs[folds.index(0)]
            raise RunError("not a --folds parent, and the others are: combine --folds parents with each other, or "
                           "run directories with each other", plain)
        return _combine_fold_parents(run_dirs, folds, out, dev, batch_size, workers, say)
    ensemble = load_model(run_dirs, dev)
    assert isinstance(ensemble, Ensemble)
    if ensemble.head not in CLASSIFIER_HEADS:
        raise RunError(f"a {ensemble.head} run: `steelinspect ensemble` combines classifiers (segmenters: "
                       "`train segment --folds K`)", run_dirs[0])
    splits = _shared_splits(ensemble.members)
    first = ensemble.members[0]
    if not splits["val"]:
        raise RunError("its validation split is empty: nothing to tune the ensemble on", first.run_dir)
    scorer = _Scorer(first, dev, batch_size, workers)
    say(f"{len(run_dirs)} members at {', '.join(dict.fromkeys(_size(m) for m in ensemble.members))}; tuning on the "
        f"{len(splits['val'])} validation images they share")
    val = scorer.collect(ensemble, splits["val"])
    params = scorer.task.tune(val)
    metrics = {"val": scorer.task.metrics(val, params)}
    return _write_folder(out, ensemble, scorer, params, metrics, splits,
                         f"the members' shared validation split ({len(splits['val'])} images)",
                         replace(first.config, out=out), dev, say)


class _Scorer:
    """The task and data an ensemble is tuned and scored with: its first member's (they share data and head)."""

    def __init__(self, first: LoadedRun, dev, batch_size: int, workers: int):
        data = Path(first.config.data)
        self.master, self.images = build_master(data), data_dir(data).images
        self.task = make_task(first.head)
        self.task.configure(replace(first.config, tile_width=None))  # the loss reported; evaluation sees whole images
        self.task.set_loss_weights(first.loss_weights)
        self.dev, self.batch_size, self.workers = dev, batch_size, workers

    def collect(self, model: LoadedRun, ids: list[str]):
        frame = frames_from_ids(self.master, {"part": ids})["part"]
        return collect(model.model, self.task, self.images, frame, model.preprocess, self.dev, self.batch_size,
                       self.workers)


def _write_folder(out: Path, ensemble: Ensemble, scorer: _Scorer, params, metrics: dict, splits: dict, tuned_on: str,
                  config, dev, say: Callable[[str], None], scored: Sequence[Path] | None = None) -> Path:
    """Score the ensemble on the test split, then write the folder (module doc). `scored`: whose own test scores
    stand beside the ensemble's (default its members)."""
    task = scorer.task
    metrics["test"] = task.metrics(scorer.collect(ensemble, splits["test"]), params) if splits["test"] else None
    key = task.score_key
    scored = [m.run_dir for m in ensemble.members] if scored is None else scored
    metrics["members_test"] = {key: {str(d): (read_metrics(d).get("test") or {}).get(key) for d in scored}}
    first_key = next(iter(metrics))  # "val" or "oof": what the thresholds were tuned on
    with atomic_dir(out, what="ensemble folder") as tmp:
        members = [os.path.relpath(os.path.abspath(m.run_dir), out) for m in ensemble.members]
        write_json(tmp / CONFIG_FILE, config.to_dict())
        write_json(tmp / SPLITS_FILE, {"train": sorted(ensemble.trained_ids()), "val": splits["val"],
                                       "test": splits["test"]})
        write_ensemble(tmp, {"head": ensemble.head, "members": members, "seed": config.seed, "tuned_on": tuned_on,
                             **task.param_fields(params)})
        write_json(tmp / METRICS_FILE, {**metrics, **task.param_fields(params)})
    load_model(out, dev)  # the folder loads as written (members found through their relative paths)
    if metrics["test"] is not None:
        singles = [v for v in metrics["members_test"][key].values() if v is not None]
        alone = f" (alone: {', '.join(f'{v:.4f}' for v in singles)})" if singles else ""
        name = {"val": "validation", "oof": "out-of-fold"}[first_key]
        say(f"ensemble: {name} {key} {metrics[first_key][key]:.4f}; test {key} {metrics['test'][key]:.4f}{alone}")
    return out


def _fold_count(path: Path) -> int:
    """K for a --folds parent, 0 for a run directory; an `ensemble` folder is refused in one line."""
    if not is_parent(path):
        return 0
    folds = read_ensemble(path).get("folds")
    if not folds:
        raise RunError(f"an ensemble folder ({ENSEMBLE_FILE}); give its members' run directories", path)
    return int(folds)


def _combine_fold_parents(parents: Sequence[Path], counts: Sequence[int], out: Path, dev, batch_size: int,
                          workers: int, say: Callable[[str], None]) -> Path:
    """The ensemble of --folds parents (`counts`: each one's K) with the same folds, tuned on their out-of-fold
    predictions (module doc)."""
    k_folds = counts[0]
    for parent, count in zip(parents[1:], counts[1:]):
        if count != k_folds:
            raise RunError(f"holds {count} folds where {parents[0]} holds {k_folds}: combine parents "
                           "trained with the same --folds and --seed", parent)
    members = [[p / m for m in read_ensemble(p)["members"]] for p in parents]
    first = load_model(members[0][0], dev)
    if first.head not in CLASSIFIER_HEADS:
        raise RunError(f"a {first.head} parent: `steelinspect ensemble` combines classifiers", parents[0])
    scorer = _Scorer(first, dev, batch_size, workers)
    parts, ids, test = [], [], None
    for k in range(k_folds):
        fold = load_model([m[k] for m in members], dev)  # fold k of every parent: none trained on fold k
        assert isinstance(fold, Ensemble)
        splits = _shared_splits(fold.members)
        if test is not None and sorted(splits["test"]) != sorted(test):
            raise RunError("its test split differs from fold 1's", members[0][k])
        test = splits["test"]
        parts.append(scorer.collect(fold, splits["val"]))
        ids += splits["val"]
    say(f"{len(parents)} parents of {k_folds} folds; tuning on the out-of-fold predictions of {len(ids)} images")
    oof = merge_fold_parts(parts, ids)
    params = scorer.task.tune(oof)
    metrics = {"oof": scorer.task.metrics(oof, params)}
    ensemble = load_model([m for ms in members for m in ms], dev)
    assert isinstance(ensemble, Ensemble)
    return _write_folder(out, ensemble, scorer, params, metrics, {"val": [], "test": test or []},
                         f"the out-of-fold predictions of {len(parents)} --folds parents, fold by fold ({len(ids)} "
                         "images)", replace(first.config, out=out, folds=1, fold=0), dev, say, scored=parents)


def _size(run: LoadedRun) -> str:
    tile = f" in {run.config.tile_width}-wide tiles" if run.config.tile_width else ""
    return f"{run.preprocess.height}x{run.preprocess.width}{tile}"
