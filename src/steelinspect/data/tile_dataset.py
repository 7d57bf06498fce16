"""Training tiles for the classifiers (`train ... --tile-width`): a full-height window of the working image,
labelled from the masks inside it, so that a model trained on tiles can score a whole image tile by tile
(models/tiling.py).

A class counts in a tile when the tile holds at least MIN_TILE_PIXELS of its mask pixels (full-resolution
pixels), or at least half of them for a mask smaller than twice that: a sliver of a defect cut by the tile's
edge is not called a defect, a small one wholly inside is. A share of the tiles (`positive`) is placed over a
defect of a class drawn uniformly among the image's classes, so that a small, rare defect is not left outside
most tiles of its image.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE, NUM_CLASSES
from steelinspect.data.dataset import Augment
from steelinspect.data.images import read_gray, resize
from steelinspect.data.master import RLE_COLUMNS
from steelinspect.data.paste import DefectPaste, paste_stream
from steelinspect.data.transforms import Preprocess

MIN_TILE_PIXELS = 64


def column_profile(rles: list[str], width: int) -> np.ndarray:
    """Mask pixels per class (NUM_CLASSES, width) in each column of an image resized to `width` columns: the
    full-resolution mask columns summed into the working columns they shrink into."""
    full = np.zeros((NUM_CLASSES, IMAGE_SHAPE[1]), dtype=np.int64)
    for c, code in enumerate(rles):
        if code:
            full[c] = rle.decode(code, IMAGE_SHAPE).sum(axis=0)
    edges = (np.arange(width) * IMAGE_SHAPE[1]) // width
    return np.add.reduceat(full, edges, axis=1)


def tile_labels(profile: np.ndarray, left: int, tile: int) -> np.ndarray:
    """float32 (NUM_CLASSES,): which classes the columns [left, left + tile) hold (see the module's rule)."""
    inside = profile[:, left : left + tile].sum(axis=1)
    total = profile.sum(axis=1)
    need = np.minimum(MIN_TILE_PIXELS, np.ceil(total / 2))
    return ((inside > 0) & (inside >= need)).astype(np.float32)


class TileDataset(Dataset):
    """(tile, target, index): tile float32 (1, H, tile) cut from the whole preprocessed image (normalised as a
    whole, as inference sees it); target (1,) defect-or-clean for `head` "binary", (NUM_CLASSES,) for
    "multilabel". `targets` stays image-level: the sampler and the loss weights read it."""

    required_size = None

    def __init__(self, images_dir: Path, frame: pd.DataFrame, targets: np.ndarray, preprocess: Preprocess,
                 head: str, tile: int, augment: Augment | None = None, seed: int = 0, positive: float = 0.5,
                 paste: DefectPaste | None = None):
        if head not in ("binary", "multilabel"):
            raise ValueError(f"tiles are for the binary and multilabel heads, not {head!r}")
        self.images_dir = Path(images_dir)
        self.image_ids = frame.ImageId.tolist()
        self.rles = frame[RLE_COLUMNS].to_numpy().tolist()
        self.targets = targets
        self.preprocess, self.head, self.tile = preprocess, head, tile
        # Geometry that moves columns is done here, where the masks' columns move with it: the horizontal flip,
        # and the tile instead of the augmentation's random crop.
        self.hflip = 0.0 if augment is None else augment.hflip
        self.augment = None if augment is None else replace(augment, hflip=0.0, crop=1.0)
        self.seed, self.positive, self.epoch = seed, positive, 0
        self.paste = paste  # data/paste.py: its mask joins the profile, so the tiles it lands in gain its class

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def image_paths(self) -> list[Path]:
        return [self.images_dir / i for i in self.image_ids]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int):
        item = index % len(self.image_ids)  # a repeated draw of the balanced sampler: its own tile
        rng = np.random.default_rng([self.seed, self.epoch, index])
        gray = resize(read_gray(self.images_dir / self.image_ids[item], at_least=self.preprocess.size),
                      self.preprocess.size)
        profile = column_profile(self.rles[item], self.preprocess.width)
        if self.augment is not None and self.paste is not None:
            drawn = self.paste.draw(gray, paste_stream(self.seed, self.epoch, index))
            if drawn is not None:
                gray, class_id, placed = drawn
                # In full-resolution pixels, as column_profile counts them.
                per_pixel = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] / (gray.shape[0] * gray.shape[1])
                profile = profile.copy()
                profile[class_id - 1] += np.round(placed.sum(axis=0) * per_pixel).astype(profile.dtype)
        if self.augment is not None:
            if rng.random() < self.hflip:
                gray, profile = gray[:, ::-1], profile[:, ::-1]
            gray = self.augment(gray, rng)
        x = self.preprocess.normalize(np.ascontiguousarray(gray))
        left = self._left(profile, rng)
        labels = tile_labels(profile, left, self.tile)
        y = labels.max(keepdims=True) if self.head == "binary" else labels
        return torch.from_numpy(np.ascontiguousarray(x[:, :, left : left + self.tile])), torch.from_numpy(y), item

    def _left(self, profile: np.ndarray, rng: np.random.Generator) -> int:
        width = profile.shape[1]
        present = np.flatnonzero(profile.sum(axis=1))
        if len(present) and rng.random() < self.positive:
            columns = np.flatnonzero(profile[present[rng.integers(len(present))]])
            x = columns[rng.integers(len(columns))]  # a column of the drawn class lands anywhere in the tile
            return int(np.clip(x - rng.integers(self.tile), 0, width - self.tile))
        return int(rng.integers(width - self.tile + 1))
