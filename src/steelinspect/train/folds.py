"""K-fold training (`train binary|multiclass|segment ... --folds K`): K ordinary runs in one parent directory, the
out-of-fold predictions, and the ensemble's decision parameters tuned on them (the Kaggle winners' recipe).

PARENT/fold_k is an ordinary run validating on fold k (data/folds.py; the test split stays out of every fold).
When every fold has finished, each member predicts its own validation fold; together these out-of-fold (OOF)
predictions cover every non-test image exactly once, each by a model that never trained on it:
- classifiers: PARENT/oof.csv, one row per image: its fold, the probabilities and the truth;
- segmenter: PARENT/oof.npz, per image the Dice of every post-processing candidate (postprocess/grid.py: about
  400 numbers, 2 KB), which is all post-processing tuning needs. The probability maps themselves would be 1.6 MB
  per image as uint8 at 256x1600 (20 GB for the Kaggle set), so they are not kept.
The ensemble's thresholds (or post-processing) are tuned on the OOF predictions, stored in PARENT/ensemble.json,
and the ensemble (members' probabilities averaged) is scored on the test split: PARENT/metrics.json holds the OOF
and test metrics and each member's own test score beside the ensemble's.

Tuning on OOF predictions tunes on single members' probabilities and applies the setting to their average, which
is smoother; it is what the winners did, and it is the only tuning on images no member trained on.
--resume continues the parent: finished folds (metrics.json) are reused, an interrupted one resumes from its
checkpoint, the others start.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import opencv_single_threaded
from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.data.splits import frames_from_ids
from steelinspect.device import resolve_device
from steelinspect.errors import ConfigError, RunError
from steelinspect.io import atomic_write, read_json, write_json
from steelinspect.metrics.dice import DiceCounts
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.ensemble import load_model, write_ensemble
from steelinspect.runs.files import (CHECKPOINT_FILE, CONFIG_FILE, ENSEMBLE_FILE, FOLD_PREFIX, METRICS_FILE,
                                     MODEL_FILE, OOF_CSV, OOF_NPZ, SPLITS_FILE)
from steelinspect.runs.store import load_run, read_metrics
from steelinspect.train import distributed
from steelinspect.train.tasks import Collector, make_task


def fold_dir(parent: str | Path, k: int) -> Path:
    return Path(parent) / f"{FOLD_PREFIX}{k}"


def train_folds(config: TrainConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Train config.folds runs into config.out/fold_k, then the OOF predictions and the ensemble; returns the
    parent."""
    from steelinspect.train.loop import train

    config.validate()
    if config.folds < 2 or config.fold:
        raise ConfigError(f"train_folds needs --folds of at least 2 (got {config.folds}) and no fold of its own")
    say = log or (lambda _msg: None)
    parent = Path(config.out)
    _prepare_parent(config)
    for k in range(1, config.folds + 1):
        member = replace(config, out=fold_dir(parent, k), fold=k, resume=False)
        if (member.out / METRICS_FILE).is_file():
            say(f"fold {k}/{config.folds}: finished, reused")
            continue
        member.resume = (member.out / CHECKPOINT_FILE).is_file()
        say(f"fold {k}/{config.folds}" + (" (resuming)" if member.resume else ""))
        train(member, progress=progress, log=log)
    if os.environ.get("RANK", "0") != "0":  # under torchrun the folds train on every process; one finishes them
        return parent
    return finish_folds(parent, config, say)


def _prepare_parent(config: TrainConfig) -> None:
    parent = Path(config.out)
    if config.resume:
        if not (parent / CONFIG_FILE).is_file():
            raise RunError(f"nothing to resume: no {CONFIG_FILE}", parent)
        config.check_resumes(TrainConfig.read(parent / CONFIG_FILE), parent)
    elif (parent / CONFIG_FILE).exists() or (parent / MODEL_FILE).exists():
        raise ConfigError(f"{parent} already holds a run; use --resume to continue it or choose another --out")
    parent.mkdir(parents=True, exist_ok=True)
    write_json(parent / CONFIG_FILE, config.to_dict())


def collect(model, task, images: Path, frame: pd.DataFrame, preprocess, device, batch_size: int, workers: int):
    """A model's collector over one frame of images (no augmentation), in the frame's order."""
    from steelinspect.train.loop import evaluate_loader

    dataset = task.dataset(images, frame, preprocess, False, 0)  # first: the segmenter's working size
    opencv_single_threaded()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    return evaluate_loader(model, task, loader, device, distributed.Dist())


def finish_folds(parent: str | Path, config: TrainConfig, say=lambda _msg: None) -> Path:
    """From K finished folds: the OOF predictions, the ensemble's parameters tuned on them, its test metrics."""
    parent = Path(parent)
    device = resolve_device(config.device)
    master = build_master(config.data)
    images = data_dir(config.data).images
    task = make_task(config.head)
    if hasattr(task, "configure"):
        task.configure(config)
    parts, ids, fold_of, trained, test = [], [], [], set(), None
    for k in range(1, config.folds + 1):
        run = load_run(fold_dir(parent, k), device)
        splits = read_json(run.run_dir / SPLITS_FILE)
        frames = frames_from_ids(master, {"val": splits["val"]})
        task.set_loss_weights(run.loss_weights)
        parts.append(collect(run.model, task, images, frames["val"], run.preprocess, device, config.batch_size,
                             config.workers))
        ids += splits["val"]
        fold_of += [k] * len(splits["val"])
        trained.update(splits["train"])
        test = splits["test"] if test is None else test
        if splits["test"] != test:
            raise RunError(f"fold {k} holds out other test images than fold 1 (made with other settings?)", run.run_dir)
    if len(set(ids)) != len(ids):
        raise RunError("the folds' validation images overlap (made with other settings?)", parent)
    oof = merge_fold_parts(parts, ids)
    params = task.tune(oof)
    oof_metrics = task.metrics(oof, params)
    _write_oof(parent, task, oof, ids, fold_of)
    members = [fold_dir(parent, k).name for k in range(1, config.folds + 1)]
    write_json(parent / SPLITS_FILE, {"train": sorted(trained), "val": [], "test": test})
    write_ensemble(parent, {"head": config.head, "members": members, "folds": config.folds, "seed": config.seed,
                            "tuned_on": f"out-of-fold predictions ({len(ids)} images)", **task.param_fields(params)})
    ensemble = load_model(parent, device)
    test_metrics = None
    if test:
        test_frame = frames_from_ids(master, {"test": test})["test"]
        part = collect(ensemble.model, task, images, test_frame, ensemble.preprocess, device, config.batch_size,
                       config.workers)
        test_metrics = task.metrics(part, params)
    key = "dice_kaggle" if config.head == "segment" else task.score_key  # the segmenter's with its tuned setting
    member_test = {m: (read_metrics(parent / m).get("test") or {}).get(key) for m in members}
    metrics = {"oof": oof_metrics, "test": test_metrics, "members_test": {key: member_test},
               **task.param_fields(params)}
    write_json(parent / METRICS_FILE, metrics)
    if test_metrics is not None:
        singles = [v for v in member_test.values() if v is not None]
        say(f"ensemble of {config.folds}: out-of-fold {key} {oof_metrics[key]:.4f}; test {key} "
            f"{test_metrics[key]:.4f} (members alone: mean {np.mean(singles):.4f}); {ENSEMBLE_FILE} in {parent}")
    return parent


def merge_fold_parts(parts: list, ids: list[str]):
    """One collector from the folds' validation collectors (fold order; image ids as the keys)."""
    first = parts[0]
    if isinstance(first, Collector):
        probs = np.concatenate([p.arrays()[0] for p in parts])
        targets = np.concatenate([p.arrays()[1] for p in parts])
        return Collector([probs], [targets], [np.arange(len(ids))], sum(p.loss_sum for p in parts),
                         sum(p.count for p in parts))
    out = type(first)(first.grid, first.working_size, loss_sum=sum(p.loss_sum for p in parts),
                      count=sum(p.count for p in parts), raw=DiceCounts())
    n = 0
    for p in parts:
        out.dice += p.dice
        out.predicted += p.predicted
        out.positive += p.positive
        for row in zip(*p.raw.arrays()):
            out.raw.add(ids[n], *row)
            out.indices.append(n)
            n += 1
    return out


def _write_oof(parent: Path, task, oof, ids: list[str], fold_of: list[int]) -> None:
    if isinstance(oof, Collector):
        probs, targets = oof.arrays()
        frame = pd.DataFrame({"ImageId": ids, "fold": fold_of})
        names = ["p_defect"] if probs.shape[1] == 1 else [f"p_class_{c}" for c in CLASS_IDS]
        for i, name in enumerate(names):
            frame[name] = probs[:, i]
        if targets.ndim == 1:  # the softmax head: the class index
            frame["class"] = np.asarray(CLASS_IDS)[targets.astype(int)]
        else:
            for i, name in enumerate(names):
                frame[name.replace("p_", "y_")] = targets[:, i].astype(int)
        with atomic_write(parent / OOF_CSV) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6f")
        return
    with atomic_write(parent / OOF_NPZ) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, image_ids=np.array(ids), fold=np.array(fold_of), dice=np.stack(oof.dice),
                            predicted=np.stack(oof.predicted), positive=np.stack(oof.positive),
                            thresholds=oof.grid.thresholds, min_areas=oof.grid.min_areas)
