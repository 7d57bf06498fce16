"""Which training images an epoch draws (`--sampler`).

- `natural`: every training image once, in a seeded order (data.dataset.EpochSampler).
- `balanced`: as many draws as training images, with replacement, so that each class is seen about equally
  often. An image weighs 1 / (the number of training images holding its rarest class); images with no class
  (clean images, where a task has them) form a group of their own. Class 2, on 2% of the real images, is then
  drawn about as often as class 3 on 40%.

The balanced draws are fixed by (seed, epoch), so a resumed run sees what an uninterrupted one would, and they
are sharded across processes exactly like EpochSampler's order. The k-th repeat of an image within an epoch is
numbered index + k * size: the datasets read image index % size but seed its augmentation with the drawn number,
so a rare image drawn three times is seen in three different augmentations.
"""

from __future__ import annotations

import numpy as np

from steelinspect.data.dataset import EpochSampler

SAMPLERS = ("natural", "balanced")


def class_table(targets: np.ndarray) -> np.ndarray:
    """(N, K + 1) bool: which classes each image holds, the last column 'no class'. `targets` is (N, K)
    multi-hot (sigmoid heads, the segmenter's image-level view) or (N,) class indices (softmax head)."""
    targets = np.asarray(targets)
    if targets.ndim == 1:
        onehot = np.zeros((len(targets), int(targets.max(initial=0)) + 1), dtype=bool)
        onehot[np.arange(len(targets)), targets.astype(int)] = True
    else:
        onehot = targets.reshape(len(targets), -1) > 0.5
    return np.concatenate([onehot, ~onehot.any(axis=1, keepdims=True)], axis=1)


def balanced_weights(targets: np.ndarray) -> np.ndarray:
    """Each image's probability of being drawn (sums to 1): the inverse frequency of its rarest class."""
    table = class_table(targets)
    if len(table) == 0:
        raise ValueError("no training images to sample from")
    counts = table.sum(axis=0)
    inverse = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    weights = (table * inverse[None, :]).max(axis=1)
    return weights / weights.sum()


def sample_weights(sampler: str, targets: np.ndarray) -> np.ndarray | None:
    """The draw probabilities of a --sampler (None: natural, every image once)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return balanced_weights(targets) if sampler == "balanced" else None


def number_repeats(drawn: np.ndarray, size: int) -> np.ndarray:
    """drawn[i] + k * size where k counts the earlier draws of the same image (0 for its first draw)."""
    drawn = np.asarray(drawn, dtype=np.int64)
    order = np.argsort(drawn, kind="stable")
    ordered = drawn[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    lengths = np.diff(np.r_[starts, len(drawn)])
    repeat = np.empty(len(drawn), dtype=np.int64)
    repeat[order] = np.arange(len(drawn)) - np.repeat(starts, lengths)
    return drawn + repeat * size


class BalancedSampler(EpochSampler):
    """EpochSampler whose epoch is `size` weighted draws with replacement (see the module docstring)."""

    def __init__(self, weights: np.ndarray, global_batch: int, seed: int, rank: int = 0, world: int = 1):
        super().__init__(len(weights), global_batch, seed, True, rank, world)
        self.weights = np.asarray(weights, dtype=np.float64)

    def order(self) -> np.ndarray:
        # The extra 1 keeps this stream apart from the natural order's rng([seed, epoch]).
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        drawn = rng.choice(self.size, size=self.size, replace=True, p=self.weights)
        return number_repeats(drawn, self.size)


def make_sampler(sampler: str, targets: np.ndarray, global_batch: int, seed: int, rank: int = 0,
                 world: int = 1) -> EpochSampler:
    """The training sampler a --sampler names, over a training set with these targets."""
    weights = sample_weights(sampler, targets)
    if weights is None:
        return EpochSampler(len(targets), global_batch, seed, True, rank, world)
    return BalancedSampler(weights, global_batch, seed, rank, world)
