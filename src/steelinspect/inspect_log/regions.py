"""Defect regions of a prediction: one per connected component of each class mask, with its own RLE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.postprocess.masks import components


@dataclass(frozen=True)
class DefectRegion:
    class_id: int
    area: int
    x: int
    y: int
    width: int
    height: int
    rle: str  # Kaggle RLE of this region alone, in the image the masks cover

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        return rle.decode(self.rle, shape)


def regions_from_masks(masks: np.ndarray) -> list[DefectRegion]:
    """(4, H, W) bool masks (post-processed) -> regions, class by class, in component order. Components are
    8-connected, as post-processing counts them, so each region is one component post-processing kept."""
    found = []
    for class_id, mask in zip(CLASS_IDS, masks):
        if not mask.any():
            continue
        labels, stats = components(mask)
        for k, (x, y, w, h, area) in enumerate(stats, start=1):
            found.append(DefectRegion(class_id, int(area), int(x), int(y), int(w), int(h),
                                      rle.encode(labels == k)))
    return found
