"""K stratified folds of the images a task trains on (`train ... --folds K`), with the held-out test split kept
out of every fold.

The test split is the one data/splits.make_splits draws for the same seed, so fold runs and ordinary runs of one
seed share it. Every other image (what an ordinary run splits into train and validation) is dealt into K folds,
stratified on its label combination (rare combinations pooled, like data/splits), shuffled by the seed. Fold run k
validates on fold k and trains on the others.

Under `full` the folds are dealt once over the whole dataset and each task keeps its own images of every fold, as
make_splits does for the splits: for one seed and K an image has the same fold for step 1, step 2 and the
segmenter, so fold k of one task never trained on fold k of another (tune-gate relies on it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from steelinspect.data.splits import _pooled_keys, select_images, split_frame
from steelinspect.errors import ConfigError


def assign_folds(frame: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Fold number 1..K of every row of `frame` (with a `key` column), stratified on `key`, fixed by the seed."""
    if len(frame) < folds:
        raise ConfigError(f"--folds {folds}: only {len(frame)} non-test images to deal into folds")
    keys = _pooled_keys(frame.key, min_count=folds)
    out = np.zeros(len(frame), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has fewer members than n_splits"
        try:
            parts = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame, keys))
        except ValueError:  # a combination too small to stratify after pooling: deal at random
            parts = list(KFold(folds, shuffle=True, random_state=seed).split(frame))
    for k, (_, held) in enumerate(parts, start=1):
        out[held] = k
    return out


def make_fold_splits(master: pd.DataFrame, task: str, protocol: str, per_class: int, seed: int, folds: int,
                     fold: int, val: float = 0.15, test: float = 0.15) -> dict[str, pd.DataFrame]:
    """train / val / test of fold run `fold` (1..K): val is fold `fold`, train the other folds, test the same held-out
    split as make_splits. `val` only matters through the test draw (it is merged back into the folds)."""
    if not 1 <= fold <= folds:
        raise ConfigError(f"fold {fold} is not one of 1..{folds}")
    selected = select_images(master, task, protocol, per_class, seed)
    base = selected if protocol == "seed" else select_images(master, "binary", "full", per_class, seed)
    parts = split_frame(base, seed, val, test)
    pool = pd.concat([parts["train"], parts["val"]]).sort_values("ImageId").reset_index(drop=True)
    numbers = assign_folds(pool, folds, seed)
    keep = set(selected.ImageId)
    out = {"train": pool[numbers != fold], "val": pool[numbers == fold], "test": parts["test"]}
    return {name: part[part.ImageId.isin(keep)].reset_index(drop=True) for name, part in out.items()}
