"""Pseudo-labelled images in training: RUN_DIR/pseudo.json (made by pseudo/ before training) -> a dataset beside
the labelled training split, and a sampler that puts a set share of pseudo-labelled images in every batch.

Only the training batches see them: validation, test, the tuning of the decision parameters and the final
metrics are computed on the labelled splits alone. An epoch still passes over every labelled training image
once; the pseudo-labelled ones are drawn in a seeded order, a fresh subset each epoch when there are more than
the epoch's batches take.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.dataset import EpochSampler
from steelinspect.data.master import AREA_COLUMNS, MASTER_COLUMNS, RLE_COLUMNS
from steelinspect.data.sampling import make_sampler
from steelinspect.errors import RunError
from steelinspect.runs.files import PSEUDO_FILE
from steelinspect.runs.pseudo import read_pseudo


def pseudo_frame(kept: list[dict], task: str) -> pd.DataFrame:
    """pseudo.json's kept images as master-table rows, so each task builds its dataset as for labelled ones."""
    rows = []
    for entry in kept:
        labels = [int(c) for c in entry["labels"]]
        rles = list(entry.get("rles") or [""] * len(CLASS_IDS))
        defect = bool(labels)
        rows.append([entry["image"], defect, len(labels), labels, *rles,
                     *(rle.area(r, IMAGE_SHAPE) if r else 0 for r in rles)])
    return pd.DataFrame(rows, columns=MASTER_COLUMNS)


class MixedDataset(Dataset):
    """The labelled training dataset followed by the pseudo-labelled one: index i < len(labelled) is labelled,
    the rest pseudo-labelled (the index is returned whole, so the two never collide in a collector)."""

    def __init__(self, labelled: Dataset, pseudo: Dataset):
        self.labelled, self.pseudo = labelled, pseudo
        self.required_size = labelled.required_size

    @property
    def targets(self) -> np.ndarray:
        """The labelled images' targets: class weights come from real labels only."""
        return self.labelled.targets

    def image_paths(self) -> list[Path]:
        return [*self.labelled.image_paths(), *self.pseudo.image_paths()]

    def set_epoch(self, epoch: int) -> None:
        self.labelled.set_epoch(epoch)
        self.pseudo.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.labelled) + len(self.pseudo)

    def __getitem__(self, index: int):
        n = len(self.labelled)
        if index < n:
            return self.labelled[index]
        x, y, _ = self.pseudo[index - n]
        return x, y, index


def pseudo_per_batch(batch_size: int, share: float) -> int:
    """Pseudo-labelled images in a global batch of `batch_size`: round(share x batch), at least 1, and at least
    one labelled image left."""
    return min(batch_size - 1, max(1, round(share * batch_size)))


class MixedSampler(Sampler[int]):
    """Global batches of `batch_size`: `per_batch` pseudo-labelled indices (len(labelled) + j) and the rest from
    the labelled order of `base` (an EpochSampler: each labelled image once per epoch), shuffled within the batch
    so every process gets a mix. Sharded across processes as EpochSampler does: rank r takes its contiguous slice
    of every global batch, a short last batch padded by wrapping."""

    def __init__(self, base: EpochSampler, pseudo_size: int, per_batch: int):
        if pseudo_size < 1 or not 0 < per_batch < base.global_batch:
            raise ValueError(f"need pseudo images and 0 < per_batch < {base.global_batch}, got {pseudo_size}, {per_batch}")
        self.base, self.pseudo_size, self.per_batch = base, pseudo_size, per_batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def batches(self) -> list[np.ndarray]:
        """This epoch's global batches (dataset indices)."""
        labelled = self.base.order()
        n, batch = self.base.size, self.base.global_batch
        own = batch - self.per_batch
        count = math.ceil(n / own)
        seed = self.base.seed
        stream, cycle = [], 0
        while sum(len(s) for s in stream) < count * self.per_batch:
            stream.append(np.random.default_rng([seed, self.epoch, 1, cycle]).permutation(self.pseudo_size))
            cycle += 1
        pseudo = np.concatenate(stream) + n
        out = []
        for b in range(count):
            items = np.concatenate([labelled[b * own : (b + 1) * own], pseudo[b * self.per_batch : (b + 1) * self.per_batch]])
            out.append(np.random.default_rng([seed, self.epoch, 2, b]).permutation(items))
        return out

    def __iter__(self):
        batches = self.batches()
        if self.base.world == 1:
            return iter(np.concatenate(batches).tolist())
        batch, per_rank, rank = self.base.global_batch, self.base.global_batch // self.base.world, self.base.rank
        mine = []
        for items in batches:
            if len(items) < batch:
                items = np.resize(items, batch)
            mine.extend(items[rank * per_rank : (rank + 1) * per_rank].tolist())
        return iter(mine)

    def __len__(self) -> int:
        count = math.ceil(self.base.size / (self.base.global_batch - self.per_batch))
        if self.base.world == 1:
            return self.base.size + count * self.per_batch
        return count * (self.base.global_batch // self.base.world)


def attach_pseudo(config, task, splits: dict[str, pd.DataFrame], datasets: dict, preprocess, say) -> None:
    """With --pseudo: datasets["train"] becomes the labelled split followed by RUN_DIR/pseudo.json's images.
    RunError if any of them is an image of the labelled data set (pseudo/ leaves those out; this guards a
    pseudo.json edited or written by something else)."""
    if config.pseudo is None:
        return
    record = read_pseudo(config.out)
    kept = record["kept"]
    labelled = {name: set(frame.ImageId) for name, frame in splits.items()}
    for entry in kept:
        for split, ids in labelled.items():
            if entry["image"] in ids:
                raise RunError(f"pseudo-labelled image {entry['image']} is in this run's {split} split; "
                               "pseudo-labelled images must be outside the labelled data set",
                               Path(config.out) / PSEUDO_FILE)
    if not kept:
        raise RunError("no pseudo-labelled image to train on", Path(config.out) / PSEUDO_FILE)
    frame = pseudo_frame(kept, config.task)
    pseudo = task.dataset(Path(config.pseudo), frame, preprocess, config.augment, config.seed)
    datasets["train"] = MixedDataset(datasets["train"], pseudo)
    per_batch = pseudo_per_batch(config.batch_size, config.pseudo_share)
    say(f"pseudo-labelled: {len(kept)} images from {config.pseudo}, {per_batch} of every {config.batch_size} "
        f"per training batch (--pseudo-share {config.pseudo_share:g})")


def train_sampler(dataset, config, rank: int, world: int) -> Sampler[int]:
    """The training sampler: --sampler's (data/sampling.py) over the labelled images, or, when the dataset has
    pseudo-labelled ones, EpochSampler's natural order mixed with them (config refuses balanced with --pseudo:
    a balanced epoch numbers repeated draws past len(labelled), where the pseudo indices start)."""
    if not isinstance(dataset, MixedDataset):
        return make_sampler(config.sampler, dataset.targets, config.batch_size, config.seed, rank, world)
    labelled = dataset.labelled
    base = EpochSampler(len(labelled), config.batch_size, config.seed, True, rank, world)
    return MixedSampler(base, len(dataset.pseudo), pseudo_per_batch(config.batch_size, config.pseudo_share))
