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
from steelinspect.runs.ensemble import Ensemble, is_parent, load_model, write_ensemble
from steelinspect.runs.files import CONFIG_FILE, ENSEMBLE_FILE, METRICS_FILE, SPLITS_FILE
from steelinspect.runs.store import LoadedRun, read_metrics
from steelinspect.train.folds import collect
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
    for d in run_dirs:
        if is_parent(d):
            raise RunError(f"already an ensemble ({ENSEMBLE_FILE}); give its members' run directories", d)
    out = Path(os.path.abspath(out))
    if out in {Path(os.path.abspath(d)) for d in run_dirs}:
        raise ConfigError("--out is one of the members; choose a new folder for the ensemble", out)
    dev = resolve_device(device)
    ensemble = load_model(run_dirs, dev)
    assert isinstance(ensemble, Ensemble)
    if ensemble.head not in CLASSIFIER_HEADS:
        raise RunError(f"a {ensemble.head} run: `steelinspect ensemble` combines classifiers (segmenters: "
                       "`train segment --folds K`)", run_dirs[0])
    splits = _shared_splits(ensemble.members)
    first = ensemble.members[0]
    if not splits["val"]:
        raise RunError("its validation split is empty: nothing to tune the ensemble on", first.run_dir)
    data = Path(first.config.data)
    master = build_master(data)
    images = data_dir(data).images
    task = make_task(ensemble.head)
    task.configure(replace(first.config, tile_width=None))  # the loss reported; evaluation sees whole images
    task.set_loss_weights(first.loss_weights)
    frames = frames_from_ids(master, {"val": splits["val"], "test": splits["test"]})
    say(f"{len(run_dirs)} members at {', '.join(dict.fromkeys(_size(m) for m in ensemble.members))}; tuning on the "
        f"{len(splits['val'])} validation images they share")
    val = collect(ensemble.model, task, images, frames["val"], ensemble.preprocess, dev, batch_size, workers)
    params = task.tune(val)
    metrics = {"val": task.metrics(val, params), "test": None}
    if splits["test"]:
        test = collect(ensemble.model, task, images, frames["test"], ensemble.preprocess, dev, batch_size, workers)
        metrics["test"] = task.metrics(test, params)
    key = task.score_key
    metrics["members_test"] = {key: {str(m.run_dir): (read_metrics(m.run_dir).get("test") or {}).get(key)
                                     for m in ensemble.members}}
    trained = sorted(ensemble.trained_ids())
    with atomic_dir(out, what="ensemble folder") as tmp:
        members = [os.path.relpath(os.path.abspath(m.run_dir), out) for m in ensemble.members]
        write_json(tmp / CONFIG_FILE, replace(first.config, out=out).to_dict())
        write_json(tmp / SPLITS_FILE, {"train": trained, "val": splits["val"], "test": splits["test"]})
        write_ensemble(tmp, {"head": ensemble.head, "members": members, "seed": first.config.seed,
                             "tuned_on": f"the members' shared validation split ({len(splits['val'])} images)",
                             **task.param_fields(params)})
        write_json(tmp / METRICS_FILE, {**metrics, **task.param_fields(params)})
    load_model(out, dev)  # the parent loads as written (members found through their relative paths)
    if metrics["test"] is not None:
        singles = [v for v in metrics["members_test"][key].values() if v is not None]
        alone = f" (members alone: {', '.join(f'{v:.4f}' for v in singles)})" if singles else ""
        say(f"ensemble: validation {key} {metrics['val'][key]:.4f}; test {key} {metrics['test'][key]:.4f}{alone}")
    return out


def _size(run: LoadedRun) -> str:
    tile = f" in {run.config.tile_width}-wide tiles" if run.config.tile_width else ""
    return f"{run.preprocess.height}x{run.preprocess.width}{tile}"
