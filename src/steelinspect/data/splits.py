"""Which images a run trains on, and how they are split: the two protocols.

- `seed` reproduces the capstone: N images per class drawn from single-class images only; the binary set is those
  4N defect images plus 4N clean ones; the multiclass set is the 4N defect images (one label each).
- `full` uses every image: the binary set is all images; the multi-label set is every defect image (what step 2
  sees in the cascade), with all of its classes.
Splits are stratified by label combination ("0" clean, "3", "1 3", ...); combinations too rare to stratify are
pooled, so small datasets never make the split fail. Everything is fixed by the seed.

Under `full` the whole dataset is split once and each task keeps its own images of every split, so for one seed an
image lies in the same split for step 1, step 2 and the segmenter: one run can start from another's weights
(`--init`) without having trained on the other's validation or test images, and the cascade can be scored on test
images that none of its steps saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from steelinspect.constants import CLASS_IDS, FEW_POSITIVES
from steelinspect.errors import ConfigError

PROTOCOLS = ("full", "seed")
SPLITS = ("train", "val", "test")


def combination_key(class_ids: list[int]) -> str:
    return " ".join(map(str, class_ids)) if class_ids else "0"


def select_images(master: pd.DataFrame, task: str, protocol: str, per_class: int, seed: int) -> pd.DataFrame:
    """The images a task trains on under a protocol, with a `key` column (label combination)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    frame = master.assign(key=master.ClassIds.map(combination_key))
    if protocol == "seed" and task != "segment":
        rng = np.random.default_rng(seed)
        picked = []
        for c in CLASS_IDS:
            single = frame[frame.ClassIds.map(lambda ids, c=c: ids == [c])]
            take = min(per_class, len(single))
            picked.append(single.iloc[np.sort(rng.permutation(len(single))[:take])])
        defects = pd.concat(picked)
        if task == "binary":
            clean = frame[~frame.Defect]
            take = min(len(defects), len(clean))
            defects = pd.concat([defects, clean.iloc[np.sort(rng.permutation(len(clean))[:take])]])
        frame = defects
    elif task in ("multiclass", "multilabel"):
        frame = frame[frame.Defect]
    if frame.empty:
        raise ConfigError(f"no images for task {task!r} under protocol {protocol!r} (are there defect images?)")
    return frame.sort_values("ImageId").reset_index(drop=True)


def scored_images(master: pd.DataFrame, head: str) -> pd.DataFrame:
    """The images a head is scored on in a dataset it was not trained on: every image (binary, segment), the defect
    images (multi-label), the single-class defect images (softmax), as its validation split would hold them."""
    frame = select_images(master, head, "full", 0, 0)
    return frame[frame.Defect_no == 1] if head == "multiclass" else frame


def _pooled_keys(keys: pd.Series, min_count: int) -> pd.Series:
    counts = keys.value_counts()
    rare = counts[counts < min_count].index
    pooled = keys.where(~keys.isin(rare), "rare")
    if (pooled == "rare").sum() < min_count:  # the pool itself too small: fold it into the largest group
        pooled = pooled.where(pooled != "rare", counts.index[0])
    return pooled


def _split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if fraction <= 0 or len(frame) < 2:
        return frame, frame.iloc[:0]
    n_out = max(1, int(round(len(frame) * fraction)))
    keys = _pooled_keys(frame.key, min_count=max(2, int(np.ceil(1 / max(fraction, 1e-9)))))
    stratify = keys if keys.nunique() > 1 and n_out >= keys.nunique() else None
    try:
        a, b = train_test_split(frame, test_size=n_out, random_state=seed, stratify=stratify)
    except ValueError:  # a group too small to stratify after all: split at random
        a, b = train_test_split(frame, test_size=n_out, random_state=seed)
    return a.sort_values("ImageId"), b.sort_values("ImageId")


def split_frame(frame: pd.DataFrame, seed: int, val: float = 0.15, test: float = 0.15) -> dict[str, pd.DataFrame]:
    """Stratified train/val/test split of a selected frame (with a `key` column)."""
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ConfigError(f"val ({val}) and test ({test}) fractions must be in [0, 1) and sum below 1")
    rest, test_part = _split(frame, test, seed)
    train_part, val_part = _split(rest, val / (1 - test) if test < 1 else 0, seed + 1)
    return {"train": train_part.reset_index(drop=True), "val": val_part.reset_index(drop=True),
            "test": test_part.reset_index(drop=True)}


def make_splits(master: pd.DataFrame, task: str, protocol: str, per_class: int, seed: int, val: float = 0.15,
                test: float = 0.15) -> dict[str, pd.DataFrame]:
    """The train/val/test images of a task under a protocol (see the module docstring)."""
    selected = select_images(master, task, protocol, per_class, seed)
    if protocol == "seed":
        return split_frame(selected, seed, val, test)
    everything = select_images(master, "binary", "full", per_class, seed)
    keep = set(selected.ImageId)
    return {name: part[part.ImageId.isin(keep)].reset_index(drop=True)
            for name, part in split_frame(everything, seed, val, test).items()}


def split_ids(splits: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    return {name: part.ImageId.tolist() for name, part in splits.items()}


def frames_from_ids(master: pd.DataFrame, ids: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    """Rebuild split frames from stored image ids (resume, evaluate)."""
    frame = master.assign(key=master.ClassIds.map(combination_key)).set_index("ImageId", drop=False)
    missing = [i for part in ids.values() for i in part if i not in frame.index]
    if missing:
        raise ConfigError(f"{len(missing)} image(s) of the run's splits are not in the dataset, e.g. {missing[0]}")
    return {name: frame.loc[part].reset_index(drop=True) for name, part in ids.items()}


# Below this many images a held-out split still works but its numbers are anecdotes: the best epoch and the
# decision parameters are chosen on validation, and one image there moves F1 by 10 points or more.
MIN_HELD_OUT = 10


def split_warnings(splits: dict[str, pd.DataFrame], head: str, rare_threshold: str = "f1") -> list[str]:
    """What a run on few images should be told about its splits, one sentence each (empty when nothing).

    Sizes are never changed here (a run on 24 images keeps the splits its fractions give); what a small
    validation split cannot bear is said: too few images to choose on, a class the training split has but
    validation lacks (its decision parameter stays at the default: nothing to tune it on), a class tuned on a
    single validation image (under `rare_threshold` "break-even": a class with 1-4, whose threshold breaks even),
    step 1 validated without clean or without defect images.
    """
    out = []
    for name in ("val", "test"):
        n = len(splits[name])
        if 0 < n < MIN_HELD_OUT:
            use = ("the best epoch and the decision thresholds are chosen on them" if name == "val"
                   else "its scores are anecdotes")
            out.append(f"the {'validation' if name == 'val' else 'test'} split holds only {n} images: {use} "
                       f"(a larger --{name}-fraction{', or --folds K,' if name == 'val' else ''} uses more)")
    train, val = splits["train"], splits["val"]
    if head == "binary":
        if len(val) and (val.Defect.all() or not val.Defect.any()):
            out.append(f"the validation split has no {'clean' if val.Defect.all() else 'defect'} image: step 1's "
                       "threshold stays at 0.5")
        return out
    for c in CLASS_IDS:
        in_train = int(train.ClassIds.map(lambda ids, c=c: c in ids).sum())
        in_val = int(val.ClassIds.map(lambda ids, c=c: c in ids).sum())
        what = "post-processing" if head == "segment" else "threshold"
        if in_train and not in_val:
            out.append(f"class {c}: {in_train} training image(s) but none in validation" + (
                "" if head == "multiclass" else f": its {what} stays at the default"))
        elif head == "multilabel" and rare_threshold == "break-even" and 0 < in_val < FEW_POSITIVES:
            out.append(f"class {c}: only {in_val} validation image(s): its threshold calls as many validation images "
                       f"class {c} as hold it (too few to tune F1 on)")
        elif in_val == 1 and head != "multiclass":
            out.append(f"class {c}: its {what} is tuned on a single validation image")
    return out
