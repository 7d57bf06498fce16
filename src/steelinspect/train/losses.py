"""The losses a --loss names beyond each task's original one (train/tasks.py: BCE, cross-entropy;
train/segment.py: BCE + Dice).

- focal (Lin et al. 2017): BCE scaled by (1 - p_t)^gamma, so the many images a class is easily absent from stop
  dominating its gradient; alpha weighs the positives (alpha) against the negatives (1 - alpha). gamma 0 and
  alpha None is plain BCE.
- Lovasz hinge (Berman et al. 2018): a convex surrogate of the Jaccard loss, per class over the whole batch, so a
  rare class's few pixels count as much as a common class's many. The segmenter's `lovasz` adds it to BCE
  (the hinge alone starts slowly from a random decoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_GAMMA = 2.0
FOCAL_ALPHA = 0.25  # Lin et al.'s value for gamma 2


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA,
               alpha: float | None = FOCAL_ALPHA) -> torch.Tensor:
    """Sigmoid focal loss, the mean over every element: -alpha_t (1 - p_t)^gamma log(p_t)."""
    target = target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    loss = bce * (1 - p_t).pow(gamma)
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


# --mask-aux's cells (models/mask_probe.py): focal, as step 2's loss (most cells hold nothing), with positives and
# negatives weighed equally, since one class's cells are a few per image.
MASK_ALPHA = 0.5


def mask_loss(cell_logits: torch.Tensor, grid: torch.Tensor, channels: list[int] | None = None) -> torch.Tensor:
    """--mask-aux: focal loss of the probe's cell logits against the mask grid (data/mask_grid.py), same shape;
    `channels`: only these outputs' cells (--mask-classes), None: all."""
    if cell_logits.shape != grid.shape:
        raise ValueError(f"cell logits {tuple(cell_logits.shape)} against mask targets {tuple(grid.shape)}")
    if channels is not None:
        cell_logits, grid = cell_logits[:, channels], grid[:, channels]
    return focal_loss(cell_logits.float(), grid, alpha=MASK_ALPHA)


def softmax_focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """The softmax head's focal loss (one class per image): -(1 - p_y)^gamma log(p_y), averaged."""
    ce = F.cross_entropy(logits, labels.long(), reduction="none")
    return ((1 - torch.exp(-ce)).pow(gamma) * ce).mean()


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at errors sorted in decreasing order."""
    total = gt_sorted.sum()
    intersection = total - gt_sorted.cumsum(0)
    union = total + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovasz hinge of one binary problem: logits and 0/1 labels, flattened."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels.float() - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    grad = _lovasz_grad(labels.float()[perm])
    return torch.dot(F.relu(errors_sorted), grad)


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the Lovasz hinge of each class's pixels in the whole batch: logits (N, C, H, W),
    target 0/1 of the same shape. Zero when every pixel is on the right side with a margin of 1."""
    target = target.float()
    per_class = [lovasz_hinge_flat(logits[:, c].reshape(-1), target[:, c].reshape(-1))
                 for c in range(logits.shape[1])]
    return torch.stack(per_class).mean()


def bce_lovasz_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The segmenter's `lovasz`: pixel-wise BCE plus the per-class Lovasz hinge. `target` larger than the
    logits (full-size truth) is resized to them, as for BCE + Dice."""
    target = target.float()
    if target.shape[-2:] != logits.shape[-2:]:
        target = F.interpolate(target, size=logits.shape[-2:], mode="nearest")
    return F.binary_cross_entropy_with_logits(logits, target) + lovasz_hinge(logits, target)
