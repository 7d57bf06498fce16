"""The segmentation task for the generic training loop: UNet logits (N, 4, h, w), one sigmoid per class,
BCE + Dice loss, random full-height crops for training, whole images for evaluation, and the Kaggle metric
after post-processing tuned on validation.

Evaluation never holds a split's masks: each whole image is scored on arrival for every candidate
post-processing setting (postprocess/grid.py), so tuning on validation and scoring the test split with the
tuned setting are exact and need one pass each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from steelinspect.constants import IMAGE_SHAPE, NUM_CLASSES
from steelinspect.data.paste import defect_paste
from steelinspect.data.seg_dataset import SEG_AUGMENT_PRESETS, SegAugment, SegmentDataset, samples_from_master
from steelinspect.data.transforms import Preprocess
from steelinspect.metrics.dice import DiceCounts, DiceReport, mask_counts
from steelinspect.postprocess.grid import PostprocessGrid
from steelinspect.postprocess.masks import PostProcess
from steelinspect.postprocess.segmenter import to_full_size
from steelinspect.runs.config import default
from steelinspect.train.losses import bce_lovasz_loss

DEFAULT_CROP_WIDTHS = default("crop_width")


def parse_crop_widths(text: str) -> tuple[int, int] | None:
    """'384..800' -> (384, 800); '512' -> (512, 512); 'none' -> None (train on whole images)."""
    from steelinspect.errors import ConfigError

    text = text.strip().lower()
    if text in ("none", "full", "0"):
        return None
    lo, _, hi = text.partition("..")
    try:
        widths = (int(lo), int(hi or lo))
    except ValueError:
        raise ConfigError(f"crop width {text!r} is not MIN..MAX or one width (e.g. 384..800)") from None
    if widths[0] < 32 or widths[1] < widths[0]:
        raise ConfigError(f"crop width {text!r}: need 32 <= MIN <= MAX")
    return widths


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per class over the whole batch, averaged over the classes present in the batch's truth
    (a class absent from every crop would otherwise be pushed to all-zero by the smoothing term alone)."""
    probs = torch.sigmoid(logits)
    dims = (0, 2, 3)
    inter = (probs * target).sum(dims)
    true = target.sum(dims)
    dice = (2 * inter + eps) / (probs.sum(dims) + true + eps)
    present = true > 0
    if not bool(present.any()):
        return logits.new_zeros(())
    return (1 - dice)[present].mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Pixel-wise BCE (stable, from logits) plus the soft Dice loss. `target` may be larger than the logits
    (full-size truth for a model working at a reduced size): it is then resized to the logits."""
    target = target.float()
    if target.shape[-2:] != logits.shape[-2:]:
        target = F.interpolate(target, size=logits.shape[-2:], mode="nearest")
    return F.binary_cross_entropy_with_logits(logits, target) + dice_weight * soft_dice_loss(logits, target)


@dataclass
class SegmentCollector:
    """A split's segmentation scores, gathered batch by batch (and across processes).

    Whole images (evaluation): per image, the Dice of every candidate post-processing setting, at full size.
    Crops (the training pass): only raw pixel counts (probability > 0.5, no minimum area), which are cheap;
    minimum areas mean little on a crop.
    """

    grid: PostprocessGrid
    working_size: tuple[int, int]
    dice: list[np.ndarray] = field(default_factory=list)  # per image (4, T, M)
    predicted: list[np.ndarray] = field(default_factory=list)  # per image (4, T, M)
    positive: list[np.ndarray] = field(default_factory=list)  # per image (4,)
    raw: DiceCounts = field(default_factory=DiceCounts)
    indices: list[int] = field(default_factory=list)
    loss_sum: float = 0.0
    count: int = 0

    def add(self, probs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor, loss: float) -> None:
        idx = [int(i) for i in indices]
        whole = tuple(probs.shape[-2:]) == tuple(self.working_size)
        truth = targets.detach() > 0
        if truth.shape[-2:] != probs.shape[-2:] and not whole:
            truth = F.interpolate(truth.float(), size=probs.shape[-2:], mode="nearest") > 0
        if whole:
            p = probs.detach().float().cpu().numpy()
            t = truth.cpu().numpy()
            for i, item, true in zip(idx, p, t):
                full = to_full_size(item)
                if true.shape[1:] != full.shape[1:]:
                    true = _resize_masks(true, full.shape[1:])
                scores = self.grid.score_image(full, true)
                self.dice.append(scores.dice)
                self.predicted.append(scores.predicted)
                self.positive.append(scores.positive)
                self.raw.add(str(i), *(a[0] for a in mask_counts((full > 0.5)[None], true[None])))
        else:
            inter, pred, true_area = (a.cpu().numpy() for a in _torch_counts(probs.detach() > 0.5, truth))
            for k, i in enumerate(idx):
                self.raw.add(str(i), inter[k], pred[k], true_area[k])
        self.indices.extend(idx)
        self.loss_sum += loss * len(idx)
        self.count += len(idx)

    @classmethod
    def merge(cls, parts: list["SegmentCollector"]) -> "SegmentCollector":
        """One collector from every process's part, de-duplicated and in dataset order."""
        first = parts[0]
        out = cls(first.grid, first.working_size, loss_sum=sum(p.loss_sum for p in parts),
                  count=sum(p.count for p in parts))
        seen: dict[int, tuple] = {}
        for p in parts:
            raw_inter, raw_pred, raw_true = p.raw.arrays()
            for k, i in enumerate(p.indices):
                entry = [raw_inter[k], raw_pred[k], raw_true[k]]
                if p.dice:
                    entry += [p.dice[k], p.predicted[k], p.positive[k]]
                seen.setdefault(i, tuple(entry))
        for i in sorted(seen):
            entry = seen[i]
            out.raw.add(str(i), *entry[:3])
            if len(entry) > 3:
                out.dice.append(entry[3])
                out.predicted.append(entry[4])
                out.positive.append(entry[5])
            out.indices.append(i)
        return out

    @property
    def loss(self) -> float | None:
        return self.loss_sum / self.count if self.count else None

    @property
    def scored(self) -> bool:
        """True when whole images were scored (post-processing can be applied and tuned)."""
        return bool(self.dice)

    def mean_dice(self) -> np.ndarray:
        """(4, T, M) mean Dice of every candidate setting over the split."""
        return np.mean(self.dice, axis=0)

    def report(self, post: PostProcess) -> DiceReport:
        return self.grid.report(np.stack(self.dice), np.stack(self.positive), np.stack(self.predicted), post)


def _torch_counts(pred: torch.Tensor, truth: torch.Tensor):
    dims = (-2, -1)
    return (pred & truth).sum(dims), pred.sum(dims), truth.sum(dims)


def _resize_masks(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(m.view(np.uint8), shape[::-1], interpolation=cv2.INTER_NEAREST) for m in masks]) > 0


class SegmentTask:
    """The task interface of train/tasks.py for the UNet segmenter (tuned parameters: post-processing)."""

    name = "segment"
    num_outputs = NUM_CLASSES
    # Picks the best epoch: validation Kaggle Dice with the post-processing that is best on validation, i.e. what
    # tuning will reach. With the default post-processing instead, an early epoch that predicts little wins over
    # better later ones whose extra false positives tuning would have removed (seen on the demo: epoch 2 of 10).
    score_key = "dice_kaggle_oracle"
    history_keys = ("dice_kaggle", "dice_kaggle_oracle")
    paste = 0.0  # --paste (data/paste.py), set by configure

    def __init__(self, crop_widths: tuple[int, int] | None = DEFAULT_CROP_WIDTHS, augment: SegAugment | None = None,
                 grid: PostprocessGrid | None = None):
        self.crop_widths = crop_widths
        self.augment = augment or SegAugment()
        self.grid = grid or PostprocessGrid()
        self.working_size = IMAGE_SHAPE

    loss_name = "bce_dice"  # --loss: bce_dice | lovasz (BCE + Lovasz hinge)

    def configure(self, config) -> None:
        """Settings from the TrainConfig: the crop widths, the loss and the augmentation preset."""
        self.crop_widths = tuple(config.crop_width) if config.crop_width else None
        self.loss_name = config.loss
        self.augment = SEG_AUGMENT_PRESETS[config.augment_preset]
        self.paste = config.paste

    @staticmethod
    def score_tolerance(val_metrics: dict) -> float:
        """One (image, class) pair's share of the Kaggle Dice: a smaller difference between two epochs is no
        more than noise, and they tie (train/loop.py: the lower validation loss wins). Most pairs are empty (86%
        on the real label mix), so an early epoch that predicts only the common class scores within noise of a
        later one that has learnt the rare classes too; without the tie the 3-epoch segmenter kept its first
        epoch (validation 0.9155 against 0.9150, loss 0.72 against 0.46; docs/rare-classes.md)."""
        return 1.0 / (NUM_CLASSES * max(1, int(val_metrics.get("images") or 0)))

    @staticmethod
    def param_fields(params: dict) -> dict:
        """Where tuned parameters go in model.pt and metrics.json: the post-processing."""
        return {"postprocess": params}

    def dataset(self, images_dir: Path, frame: pd.DataFrame, preprocess: Preprocess, augment: bool, seed: int):
        """Training (augment): random crops with augmentation. Otherwise whole images with full-size masks."""
        self.working_size = preprocess.size
        if augment:
            return SegmentDataset(images_dir, samples_from_master(frame), preprocess, self.crop_widths, self.augment,
                                  seed, paste=defect_paste(images_dir, frame, self.paste))
        return SegmentDataset(images_dir, samples_from_master(frame), preprocess, None, None, seed, full_size_masks=True)

    def new_collector(self) -> SegmentCollector:
        return SegmentCollector(self.grid, self.working_size)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "lovasz":
            return bce_lovasz_loss(logits, y)
        return bce_dice_loss(logits, y)

    def setup_loss(self, train_targets: np.ndarray, sample_weights: np.ndarray | None = None) -> None:
        """No class weights: Dice and the Lovasz hinge already balance small defects against background."""

    def loss_weights(self) -> None:
        return None

    def set_loss_weights(self, weights) -> None:
        pass

    def default_params(self) -> dict:
        return self.grid.defaults.to_dict()

    def tune(self, collector: SegmentCollector) -> dict:
        if not collector.scored:
            return self.default_params()
        return self.grid.best(collector.mean_dice()).to_dict()

    def metrics(self, collector: SegmentCollector, params: dict) -> dict:
        out = {"loss": collector.loss, "n": collector.count}
        raw = collector.raw.report() if collector.count else None
        if not collector.scored:
            # Training crops: raw masks only.
            out["dice_kaggle"] = raw.dice_kaggle if raw else None
            out["scored_on"] = "crops, probability > 0.5, no minimum area"
            return out
        report = collector.report(PostProcess.from_dict(params))
        out.update(report.to_dict())
        out["dice_kaggle_raw"] = raw.dice_kaggle  # probability > 0.5, no minimum area: what post-processing adds
        # The best any candidate post-processing reaches on this very split (per class, then averaged): on
        # validation what tuning reaches; on test an upper bound, for comparison with the tuned score.
        out["dice_kaggle_oracle"] = float(collector.mean_dice().reshape(NUM_CLASSES, -1).max(axis=1).mean())
        out["postprocess"] = params
        return out
