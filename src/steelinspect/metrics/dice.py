"""The Kaggle Severstal metric: mean Dice over every (image, class) pair.

Dice(X, Y) = 2|X n Y| / (|X| + |Y|), and 1 when both X and Y are empty. The competition score is the mean
over all (image, class) pairs, so a pair where the image has no defect of that class counts as 1 when the
prediction is empty too. That is why an all-empty submission already scores high (0.8556 on Kaggle's public
test): every model must beat the all-empty baseline on the same images.

Everything here works from three counts per pair (intersection, predicted area, true area), so scores are
accumulated image by image without holding masks in memory. `DiceCounts` is that accumulator; `DiceReport`
is the summary written to metrics.json and printed by `steelinspect score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE, NUM_CLASSES


def dice_from_counts(inter: np.ndarray, pred_area: np.ndarray, true_area: np.ndarray) -> np.ndarray:
    """Element-wise Dice from counts; 1 where both areas are 0 (empty prediction on empty truth)."""
    inter = np.asarray(inter, dtype=np.float64)
    total = np.asarray(pred_area, dtype=np.float64) + np.asarray(true_area, dtype=np.float64)
    out = np.ones(np.broadcast(inter, total).shape, dtype=np.float64)
    np.divide(2.0 * inter, total, out=out, where=total > 0)
    return out


def mask_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intersection, predicted area, true area) per leading index of two bool arrays shaped (..., H, W)."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    if pred.ndim < 2:
        raise ValueError(f"masks must be at least 2-D (..., H, W), got shape {pred.shape}")
    axes = (-2, -1)
    return (
        np.logical_and(pred, truth).sum(axis=axes, dtype=np.int64),
        pred.sum(axis=axes, dtype=np.int64),
        truth.sum(axis=axes, dtype=np.int64),
    )


def dice_masks(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice per leading index of bool masks (..., H, W); e.g. (N, 4, H, W) -> (N, 4)."""
    return dice_from_counts(*mask_counts(pred, truth))


def rle_counts(pred_rle: str, true_rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[int, int, int]:
    """(intersection, predicted area, true area) of two RLE masks; decodes only when both are non-empty.

    Raises RLEError for a malformed string.
    """
    p_area, t_area = rle.area(pred_rle, shape), rle.area(true_rle, shape)
    if p_area == 0 or t_area == 0:
        return 0, p_area, t_area
    inter = int(np.logical_and(rle.decode(pred_rle, shape), rle.decode(true_rle, shape)).sum())
    return inter, p_area, t_area


@dataclass
class DiceCounts:
    """Per (image, class) counts, appended image by image. Arrays are (n_images, 4) int64."""

    image_ids: list[str] = field(default_factory=list)
    _inter: list[np.ndarray] = field(default_factory=list, repr=False)
    _pred: list[np.ndarray] = field(default_factory=list, repr=False)
    _true: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, image_id: str, inter, pred_area, true_area) -> None:
        """One image: three length-4 sequences in class order."""
        self.image_ids.append(image_id)
        for store, values in ((self._inter, inter), (self._pred, pred_area), (self._true, true_area)):
            values = np.asarray(values, dtype=np.int64).reshape(NUM_CLASSES)
            store.append(values)

    def add_masks(self, image_ids: list[str], pred: np.ndarray, truth: np.ndarray) -> None:
        """A batch of bool masks (N, 4, H, W)."""
        inter, p, t = mask_counts(pred, truth)
        for i, image_id in enumerate(image_ids):
            self.add(image_id, inter[i], p[i], t[i])

    def add_rles(self, image_id: str, pred_rles: list[str], true_rles: list[str], shape=IMAGE_SHAPE) -> None:
        """One image from four predicted and four true RLE strings (class order)."""
        counts = [rle_counts(p, t, shape) for p, t in zip(pred_rles, true_rles)]
        self.add(image_id, *zip(*counts))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def stack(rows):
            return np.stack(rows) if rows else np.zeros((0, NUM_CLASSES), dtype=np.int64)

        return stack(self._inter), stack(self._pred), stack(self._true)

    def report(self) -> "DiceReport":
        return DiceReport.from_counts(*self.arrays())


@dataclass(frozen=True)
class ClassScore:
    class_id: int
    dice: float  # mean over every image (the class's share of the Kaggle score)
    dice_positive: float | None  # mean over images whose truth has this class; None when none has
    positives: int  # images whose truth has this class
    predicted: int  # images with a non-empty prediction of this class
    empty_baseline: float  # what an empty prediction of this class scores (fraction of images without it)


SCORE_COLUMNS = ("class", "Dice", "Dice on defects", "defects", "predicted", "all-empty")


@dataclass(frozen=True)
class DiceReport:
    """The Kaggle score and its per-class breakdown over one set of images."""

    images: int
    dice_kaggle: float
    dice_empty_baseline: float
    classes: tuple[ClassScore, ...]

    @classmethod
    def from_counts(cls, inter: np.ndarray, pred_area: np.ndarray, true_area: np.ndarray) -> "DiceReport":
        """From (n_images, 4) intersections, predicted and true areas."""
        inter, pred_area, true_area = (np.asarray(a, dtype=np.int64) for a in (inter, pred_area, true_area))
        return cls.from_scores(dice_from_counts(inter, pred_area, true_area), true_area > 0, pred_area > 0)

    @classmethod
    def from_scores(cls, dice: np.ndarray, positive: np.ndarray, predicted: np.ndarray) -> "DiceReport":
        """From (n_images, 4) Dice per pair, truth-not-empty and prediction-not-empty flags."""
        dice = np.asarray(dice, dtype=np.float64)
        positive, predicted = np.asarray(positive, dtype=bool), np.asarray(predicted, dtype=bool)
        if dice.ndim != 2 or dice.shape[1] != NUM_CLASSES:
            raise ValueError(f"scores must be (n_images, {NUM_CLASSES}), got {dice.shape}")
        n = dice.shape[0]
        if n == 0:
            raise ValueError("no images to score")
        classes = []
        for c, class_id in enumerate(CLASS_IDS):
            pos = positive[:, c]
            classes.append(
                ClassScore(
                    class_id=class_id,
                    dice=float(dice[:, c].mean()),
                    dice_positive=float(dice[pos, c].mean()) if pos.any() else None,
                    positives=int(pos.sum()),
                    predicted=int(predicted[:, c].sum()),
                    empty_baseline=float((~pos).mean()),
                )
            )
        return cls(
            images=n,
            dice_kaggle=float(dice.mean()),
            # An empty prediction scores 1 exactly on the pairs whose truth is empty.
            dice_empty_baseline=float((~positive).mean()),
            classes=tuple(classes),
        )

    def score_rows(self) -> list[list]:
        """The per-class table (SCORE_COLUMNS) that `steelinspect score` prints and the demo reports: one row per
        class, then "all" (the Kaggle score, None where a column has no total)."""
        rows = [[str(s.class_id), s.dice, s.dice_positive, s.positives, s.predicted, s.empty_baseline]
                for s in self.classes]
        rows.append(["all", self.dice_kaggle, None, None, None, self.dice_empty_baseline])
        return rows

    @property
    def margin(self) -> float:
        """How far the score is above the all-empty baseline."""
        return self.dice_kaggle - self.dice_empty_baseline

    def to_dict(self) -> dict:
        """The metrics.json form (class ids as string keys)."""
        return {
            "images": self.images,
            "dice_kaggle": self.dice_kaggle,
            "dice_empty_baseline": self.dice_empty_baseline,
            "dice_per_class": {str(s.class_id): s.dice for s in self.classes},
            "dice_positive_per_class": {str(s.class_id): s.dice_positive for s in self.classes},
            "positives_per_class": {str(s.class_id): s.positives for s in self.classes},
            "predicted_per_class": {str(s.class_id): s.predicted for s in self.classes},
        }


def kaggle_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """The competition score of bool masks (N, 4, H, W)."""
    return float(dice_masks(pred, truth).mean())
