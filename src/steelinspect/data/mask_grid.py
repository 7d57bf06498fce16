"""Where a training image's masks lie on a classifier's feature map: the targets of `train ... --mask-aux`.

An image-level label says a class is somewhere in the frame; a thin crack among a dozen look-alike lines is then a
needle the classifier has to find from a handful of images. The masks say which line it is. The classifier's
stride-16 feature map gets one cell per 16x16 input pixels, and a cell's target for a class is 1 when any pixel
of that class's mask falls in it (a crack a pixel wide still marks its cells). models/mask_probe.py predicts
these cells from the features during training only.
"""

from __future__ import annotations

import cv2
import numpy as np

from steelinspect import rle

MAP_STRIDE = 16  # the feature map the probe reads: VGG's third block, a ResNet's layer3


def decode_masks(rles: list[str], shape: tuple[int, int], union: bool = False) -> np.ndarray:
    """uint8 (4, H, W) at `shape` (the decoded image's, which may be a reduced-scale decode): each class's mask
    (`rles`, one per class, decoded at the Kaggle frame size as every label is), shrunk so that a cell keeps any
    pixel of it. `union`: one channel, any class (the binary head's defect-or-clean)."""
    masks = rle.build_mask(rles).astype(np.uint8)
    if masks.shape[1:] != tuple(shape):  # INTER_AREA keeps any pixel above 0: a 1-px crack survives the shrink
        small = cv2.resize(np.moveaxis(masks, 0, -1) * 255, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        masks = np.moveaxis(small.reshape(*shape, -1), -1, 0)
    masks = (masks > 0).astype(np.uint8)
    return masks.max(axis=0, keepdims=True) if union else masks


def grid_targets(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (K, height // MAP_STRIDE, width // MAP_STRIDE) for a model input of `size` (height, width):
    `masks` (K, h, w) cover the whole input (they were cropped and flipped with the image), so the input's cells
    split their rows and columns evenly; 1 where a cell holds any mask pixel."""
    cells = (size[0] // MAP_STRIDE, size[1] // MAP_STRIDE)
    if min(cells) < 1:
        raise ValueError(f"input {size[0]}x{size[1]} is smaller than one {MAP_STRIDE}-pixel cell")
    rows = (np.arange(cells[0]) * masks.shape[1]) // cells[0]
    cols = (np.arange(cells[1]) * masks.shape[2]) // cells[1]
    grid = np.maximum.reduceat(np.maximum.reduceat(masks, rows, axis=1), cols, axis=2)
    return (grid > 0).astype(np.float32)
