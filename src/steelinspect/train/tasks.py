"""What differs between tasks, behind one small interface, so the training loop is the same for all.

A Task knows: its number of outputs, its dataset (targets from master rows), its loss, logits -> probabilities,
how to collect a whole split's outputs, the metrics of a split, and which decision parameters to tune on the
validation split (thresholds here; post-processing for segmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from steelinspect.constants import CLASS_IDS, NUM_CLASSES
from steelinspect.data.dataset import AUGMENT_PRESETS, Augment, ImageDataset
from steelinspect.data.master import RLE_COLUMNS
from steelinspect.data.paste import defect_paste
from steelinspect.data.transforms import Preprocess
from steelinspect.metrics.classification import (
    best_f1_threshold,
    class_threshold,
    binary_metrics,
    multiclass_metrics,
    multilabel_metrics,
)
from steelinspect.train.losses import FOCAL_ALPHA, FOCAL_GAMMA, focal_loss, softmax_focal_loss


def probabilities(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Softmax for the single-label multiclass head, sigmoid for every other."""
    return torch.softmax(logits, dim=1) if task == "multiclass" else torch.sigmoid(logits)


@dataclass
class Collector:
    """A split's probabilities and targets, gathered batch by batch (and across processes)."""

    probs: list[np.ndarray] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    indices: list[np.ndarray] = field(default_factory=list)
    loss_sum: float = 0.0
    count: int = 0

    def add(self, probs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor, loss: float) -> None:
        self.probs.append(probs.detach().float().cpu().numpy())
        self.targets.append(targets.detach().cpu().numpy())
        self.indices.append(indices.detach().cpu().numpy())
        self.loss_sum += loss * len(targets)
        self.count += len(targets)

    @classmethod
    def merge(cls, parts: list["Collector"]) -> "Collector":
        """One collector from every process's part, de-duplicated and in dataset order."""
        out = cls(loss_sum=sum(p.loss_sum for p in parts), count=sum(p.count for p in parts))
        probs = np.concatenate([a for p in parts for a in p.probs]) if out.count else np.zeros((0,))
        targets = np.concatenate([a for p in parts for a in p.targets]) if out.count else np.zeros((0,))
        indices = np.concatenate([a for p in parts for a in p.indices]) if out.count else np.zeros((0,), int)
        _, first = np.unique(indices, return_index=True)
        out.probs, out.targets, out.indices = [probs[first]], [targets[first]], [indices[first]]
        return out

    @property
    def loss(self) -> float | None:
        return self.loss_sum / self.count if self.count else None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.probs), np.concatenate(self.targets)


def _positive_share(train_targets: np.ndarray, sample_weights: np.ndarray | None) -> np.ndarray:
    """Per output, the share of training draws in which it is positive (under the sampler's weights)."""
    targets = np.asarray(train_targets, dtype=np.float64).reshape(len(train_targets), -1)
    if sample_weights is None:
        return targets.mean(axis=0)
    return (np.asarray(sample_weights, dtype=np.float64)[:, None] * targets).sum(axis=0) / np.sum(sample_weights)


class ClassificationTask:
    """Shared by the three classification heads; subclasses set targets, loss and metrics."""

    name = "classification"
    num_outputs = 1
    score_key = "f1"  # picks the best epoch (on validation)
    history_keys = ("accuracy", "precision", "recall", "f1")

    @staticmethod
    def score_tolerance(val_metrics: dict) -> float:
        """Epochs whose validation scores differ by no more than this tie (train/loop.py): exact ties only."""
        return 0.0

    @staticmethod
    def param_fields(params: list[float]) -> dict:
        """Where tuned parameters go in model.pt and metrics.json."""
        return {"thresholds": params}

    tile_width: int | None = None  # --tile-width: training (augmented) sets are tiles, evaluation whole images
    tile_positive = 0.5  # share of training tiles placed over a defect (data/tile_dataset.py)

    def dataset(self, images_dir: Path, frame: pd.DataFrame, preprocess: Preprocess, augment: bool, seed: int):
        head = "binary" if self.name == "binary" else "multilabel"
        paste = defect_paste(images_dir, frame, self.paste, head) if augment else None
        if self.tile_width is not None and augment:
            from steelinspect.data.tile_dataset import TileDataset

            return TileDataset(images_dir, frame, self.targets(frame), preprocess, self.name, self.tile_width,
                               self.augmentation, seed, self.tile_positive, paste)
        return ImageDataset(images_dir, frame.ImageId.tolist(), self.targets(frame), preprocess,
                            self.augmentation if augment else None, seed, paste,
                            frame[RLE_COLUMNS].fillna("").to_numpy().tolist() if augment and self.mask_aux else None)

    def new_collector(self) -> Collector:
        return Collector()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return probabilities(self.name, logits)

    pos_weight: torch.Tensor | None = None
    loss_name = "bce"  # --loss: bce | focal
    focal_gamma: float = FOCAL_GAMMA
    focal_alpha: float | None = FOCAL_ALPHA

    augmentation: Augment = AUGMENT_PRESETS["standard"]
    paste: float = 0.0  # --paste: share of training images given one more defect (data/paste.py)
    mask_aux: float = 0.0  # --mask-aux: training images come with their mask grids (data/mask_grid.py)
    mask_channels: list[int] | None = None  # --mask-classes: the outputs whose cells the mask loss covers (None: all)
    rare_threshold: str = "f1"  # --rare-threshold: step 2's rule for a class with 1-4 validation images

    def configure(self, config) -> None:
        """Settings from the TrainConfig: the loss and the augmentation preset."""
        self.loss_name = config.loss
        self.augmentation = AUGMENT_PRESETS[config.augment_preset]
        self.focal_gamma, self.focal_alpha = config.focal_gamma, config.focal_alpha
        self.tile_width = config.tile_width
        self.paste = config.paste
        self.mask_aux = config.mask_aux
        if self.name == "multilabel" and tuple(config.mask_classes) != CLASS_IDS:  # step 2: one output per class
            self.mask_channels = [c - 1 for c in sorted(config.mask_classes)]
        self.rare_threshold = config.rare_threshold

    def setup_loss(self, train_targets: np.ndarray, sample_weights: np.ndarray | None = None) -> None:
        """Class-imbalance weights from the training targets (called once before training). `sample_weights`:
        the training sampler's draw probabilities (None: every image once)."""

    def output_prior(self, train_targets: np.ndarray, sample_weights: np.ndarray | None = None) -> np.ndarray | None:
        """--head-prior: each sigmoid output's share of positive training draws (None: a softmax head)."""
        return _positive_share(train_targets, sample_weights)

    def _sigmoid_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "focal":
            return focal_loss(logits, y, self.focal_gamma, self.focal_alpha)
        weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=weight)

    def loss_weights(self) -> list[float] | None:
        """Stored in model.pt, so evaluation reports the same loss as training."""
        return None if self.pos_weight is None else self.pos_weight.tolist()

    def set_loss_weights(self, weights: list[float] | None) -> None:
        self.pos_weight = None if weights is None else torch.tensor(weights, dtype=torch.float32)

    def default_params(self) -> list[float]:
        return []

    def tune(self, collector: Collector) -> list[float]:
        return self.default_params()

    def epoch_params(self, val: Collector) -> list[float]:
        """The thresholds an epoch is scored with (the best epoch is picked by it). Focal loss moves the
        probabilities away from 0.5 (alpha 0.25 and gamma 2 keep a rare class's below it for epochs), so a fixed
        0.5 would call every focal epoch F1 0: it is scored with thresholds tuned on validation, as the run's
        final ones will be. BCE keeps 0.5, as before."""
        return self.tune(val) if self.loss_name == "focal" else self.default_params()


class BinaryTask(ClassificationTask):
    name = "binary"
    num_outputs = 1

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        return frame.Defect.to_numpy(dtype=np.float32)[:, None]

    def setup_loss(self, train_targets: np.ndarray, sample_weights: np.ndarray | None = None) -> None:
        if self.loss_name == "focal":  # alpha and gamma do the weighting
            return
        share = float(_positive_share(train_targets, sample_weights)[0])
        self.pos_weight = torch.tensor([min(max((1 - share) / max(share, 1e-9), 0.2), 5.0)])

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._sigmoid_loss(logits, y)

    def default_params(self) -> list[float]:
        return [0.5]

    def tune(self, collector: Collector) -> list[float]:
        probs, y = collector.arrays()
        return [best_f1_threshold(y, probs)]

    def metrics(self, collector: Collector, params: list[float]) -> dict:
        probs, y = collector.arrays()
        return binary_metrics(y, probs, params[0], collector.loss)


class MulticlassTask(ClassificationTask):
    """One label per image, softmax + cross-entropy (the capstone's step 2)."""

    name = "multiclass"
    num_outputs = NUM_CLASSES

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame.Defect_no != 1).any():
            raise ValueError("the single-label multiclass head needs images with exactly one class")
        return np.array([ids[0] - 1 for ids in frame.ClassIds], dtype=np.int64)

    def output_prior(self, train_targets: np.ndarray, sample_weights: np.ndarray | None = None) -> None:
        return None  # config refuses --head-prior for the softmax head

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "focal":
            return softmax_focal_loss(logits, y, self.focal_gamma)
        return F.cross_entropy(logits, y.long())

    def metrics(self, collector: Collector, params: list[float]) -> dict:
        probs, y = collector.arrays()
        return multiclass_metrics(y, probs, collector.loss)


class MultilabelTask(ClassificationTask):
    """Four sigmoids + BCE, so images with several classes count (the full protocol's step 2)."""

    tile_positive = 1.0  # step 2 learns which class a defect is: every training tile holds one
    name = "multilabel"
    num_outputs = NUM_CLASSES

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), NUM_CLASSES), dtype=np.float32)
        for row, ids in enumerate(frame.ClassIds):
            out[row, [c - 1 for c in ids]] = 1
        return out

    def setup_loss(self, train_targets: np.ndarray, sample_weights: np.ndarray | None = None) -> None:
        # Rare classes (2 is 3% of masks) get a larger positive weight, capped so they do not dominate. Under
        # the balanced sampler the shares are those of the draws, so the two do not compensate twice.
        if self.loss_name == "focal":  # alpha and gamma do the weighting
            return
        share = _positive_share(train_targets, sample_weights)
        n = len(train_targets)
        pos = share * n
        self.pos_weight = torch.tensor(np.clip((n - pos) / np.maximum(pos, 1), 1.0, 10.0), dtype=torch.float32)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._sigmoid_loss(logits, y)

    def default_params(self) -> list[float]:
        return [0.5] * NUM_CLASSES

    def tune(self, collector: Collector) -> list[float]:
        """F1-optimal thresholds; with --rare-threshold break-even, a class with 1-4 validation images breaks even
        (class_threshold)."""
        probs, y = collector.arrays()
        rule = class_threshold if self.rare_threshold == "break-even" else best_f1_threshold
        return [rule(y[:, i], probs[:, i]) for i in range(NUM_CLASSES)]

    def epoch_params(self, val: Collector) -> list[float]:
        """As ClassificationTask's, but F1-optimal for every class whatever --rare-threshold says, so the setting
        changes the run's final thresholds only, never the epoch kept (a break-even class's F1 on 3 validation
        images moves by thirds from epoch to epoch; docs/rare-classes.md, "Class 2's threshold")."""
        if self.loss_name != "focal":
            return self.default_params()
        probs, y = val.arrays()
        return [best_f1_threshold(y[:, i], probs[:, i]) for i in range(NUM_CLASSES)]

    def metrics(self, collector: Collector, params: list[float]) -> dict:
        probs, y = collector.arrays()
        return multilabel_metrics(y, probs, params, collector.loss)


def make_task(head: str):
    """The task object for a model head (TrainConfig.head)."""
    if head == "segment":
        from steelinspect.train.segment import SegmentTask

        return SegmentTask()
    tasks = {"binary": BinaryTask, "multiclass": MulticlassTask, "multilabel": MultilabelTask}
    if head not in tasks:
        raise ValueError(f"unknown task {head!r}")
    return tasks[head]()

