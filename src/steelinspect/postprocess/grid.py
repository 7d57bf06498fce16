"""Post-processing candidates for the segmenter, scored image by image, and the choice among them.

For every image, class and candidate (probability threshold x minimum component area) the Dice of the
post-processed mask is computed once: components are found once per threshold, with each one's area and its
overlap with the truth, and every minimum area is then a cheap filter over that list. A split is thus summarised
by a small (images, 4, thresholds, areas) table, from which the Kaggle score of ANY candidate setting follows
exactly: tuning on validation picks the best per class (the Kaggle score is a mean over (image, class) pairs, so
classes are tuned independently), and the test split is scored with the tuned setting without a second pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steelinspect.constants import NUM_CLASSES
from steelinspect.errors import ConfigError
from steelinspect.metrics.dice import DiceReport
from steelinspect.postprocess.masks import PostProcess, area_ratio, components

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_AREAS = (0, 150, 300, 600, 1000, 1500, 2000, 3000, 4000, 6000, 9000, 13000)  # pixels at full size


@dataclass(frozen=True)
class ImageScores:
    """One image: Dice and 'mask not empty' per (class, threshold, min area); truth not empty per class."""

    dice: np.ndarray  # float32 (4, T, M)
    predicted: np.ndarray  # bool (4, T, M)
    positive: np.ndarray  # bool (4,)


class PostprocessGrid:
    """The candidate settings; always includes `defaults`, so tuning can only keep or beat them."""

    def __init__(self, thresholds=THRESHOLDS, min_areas=MIN_AREAS, defaults: PostProcess | None = None):
        self.defaults = defaults or PostProcess()
        self.thresholds = np.array(sorted(set(thresholds) | set(self.defaults.thresholds)), dtype=np.float64)
        self.min_areas = np.array(sorted(set(min_areas) | set(self.defaults.min_areas)), dtype=np.float64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (NUM_CLASSES, len(self.thresholds), len(self.min_areas))

    def score_image(self, probs: np.ndarray, truth: np.ndarray) -> ImageScores:
        """probs float (4, H, W) in [0, 1] and bool truth (4, H, W) of the same size (normally 256x1600)."""
        probs = np.asarray(probs)
        truth = np.asarray(truth, dtype=bool)
        if probs.shape != truth.shape or probs.shape[0] != NUM_CLASSES:
            raise ValueError(f"probabilities {probs.shape} and truth {truth.shape} must both be (4, H, W)")
        min_areas = self.min_areas * area_ratio(probs.shape[1:])
        dice = np.empty(self.shape, dtype=np.float32)
        predicted = np.zeros(self.shape, dtype=bool)
        positive = truth.reshape(NUM_CLASSES, -1).any(axis=1)
        for c in range(NUM_CLASSES):
            true_area = int(truth[c].sum())
            for t, threshold in enumerate(self.thresholds):
                binary = probs[c] > threshold
                if not binary.any():
                    dice[c, t] = 1.0 if true_area == 0 else 0.0
                    continue
                labels, stats = components(binary)
                areas = stats[:, 4].astype(np.float64)
                if true_area:
                    inters = np.bincount(labels[truth[c]], minlength=len(areas) + 1)[1:].astype(np.float64)
                else:
                    inters = np.zeros_like(areas)
                keep = areas[None, :] >= min_areas[:, None]  # (M, K)
                pred_area = keep @ areas
                total = pred_area + true_area
                dice[c, t] = np.where(total > 0, 2.0 * (keep @ inters) / np.maximum(total, 1), 1.0)
                predicted[c, t] = pred_area > 0
        return ImageScores(dice, predicted, positive)

    def report(self, dice: np.ndarray, positive: np.ndarray, predicted: np.ndarray, post: PostProcess) -> DiceReport:
        """The Kaggle report of one setting on the grid, from every image's scores of every candidate: `dice` and
        `predicted` (N, 4, T, M), `positive` (N, 4)."""
        t, m = self.index_of(post)
        classes = np.arange(NUM_CLASSES)
        return DiceReport.from_scores(dice[:, classes, t, m], positive, predicted[:, classes, t, m])

    def index_of(self, post: PostProcess) -> tuple[np.ndarray, np.ndarray]:
        """Grid indices (threshold, min area) per class of a setting; ConfigError when it is off the grid."""
        t = [int(np.argmin(np.abs(self.thresholds - v))) for v in post.thresholds]
        m = [int(np.argmin(np.abs(self.min_areas - v))) for v in post.min_areas]
        if not (np.allclose(self.thresholds[t], post.thresholds) and np.allclose(self.min_areas[m], post.min_areas)):
            raise ConfigError(f"post-processing {post.thresholds} / {post.min_areas} is not on the tuning grid")
        return np.array(t), np.array(m)

    def best(self, mean_dice: np.ndarray) -> PostProcess:
        """The setting with the highest mean Dice per class, from a (4, T, M) table.

        Ties (common on small splits, e.g. a class absent from validation, where every setting that predicts
        nothing scores 1) go to the setting nearest the defaults, not to an extreme of the grid.
        """
        dt, dm = self.index_of(self.defaults)
        tt, mm = np.meshgrid(np.arange(len(self.thresholds)), np.arange(len(self.min_areas)), indexing="ij")
        thresholds, min_areas = [], []
        for c in range(NUM_CLASSES):
            table = mean_dice[c]
            candidates = np.argwhere(table >= table.max() - 1e-6)
            distance = np.abs(tt - dt[c]) + np.abs(mm - dm[c])
            t, m = min(candidates.tolist(), key=lambda tm: (distance[tm[0], tm[1]], tm[0], tm[1]))
            thresholds.append(float(self.thresholds[t]))
            min_areas.append(int(self.min_areas[m]))
        return PostProcess(tuple(thresholds), tuple(min_areas), self.defaults.gate, self.defaults.gate_thresholds)
