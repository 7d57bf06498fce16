"""Copy-paste augmentation for rare classes (`train multiclass --copy-paste P`, step 2's multi-label head).

A class with a handful of training images is learnt from those images' backgrounds as much as from the defect: at
the bench budget class 2 has about 16 of them and step 2 ranks it no better than chance. Pasting one defect (a
connected part of a rare class's mask, with the steel inside its coarse polygon) from a training image into other
training images shows the defect on many backgrounds, so what the images have in common is the defect. This is
the copy-paste augmentation of Ghiasi et al. (2021), for image-level labels.

With probability P a training draw gets one pasted piece, of a class drawn uniformly among the rare ones (those
with under half the training images of the most common class), from a training image of that class drawn
uniformly; the image's target gains the class. The piece keeps its rows and moves along the strip to a random
place that every random crop of the augmentation keeps whole (a crop keeping at least a share k of each side
always keeps the middle from 1 - k to k), and only pieces reaching into that middle's rows are used, so the label
stays true after augmentation.
Its brightness is shifted to the destination's mean over the same box and its edge is feathered over a few
pixels inside the polygon's margin, so no seam marks the piece.

Sources are the training split's own images only (never validation or test), decoded once per loader process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import read_gray, resize

MIN_PIXELS = 4  # smaller parts of a mask (at the working size) are specks of a polygon edge, not a defect
FEATHER = 3.0  # px (working size): the Gaussian sigma of the piece's edge, which falls inside the polygon's margin


@dataclass(frozen=True)
class Piece:
    """One pasteable defect at a working size: its grey pixels and alpha over its box, the box's rows."""

    pixels: np.ndarray  # float32 (h, w)
    alpha: np.ndarray  # float32 (h, w) in [0, 1]
    top: int
    class_id: int


def rare_classes(frame: pd.DataFrame) -> list[int]:
    """The classes with training images but fewer than half as many as the most common class."""
    counts = {c: int((frame[f"Area_{c}"] > 0).sum()) for c in CLASS_IDS}
    most = max(counts.values(), default=0)
    return [c for c in CLASS_IDS if 0 < counts[c] < most / 2]


def cut_pieces(gray: np.ndarray, mask: np.ndarray, class_id: int) -> list[Piece]:
    """The connected parts of a class's mask (both at the working size) as pieces with a feathered alpha."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    pad = int(np.ceil(3 * FEATHER))
    height, width = gray.shape
    pieces = []
    for k in range(1, count):
        x, y, w, h, area = stats[k]
        if area < MIN_PIXELS:
            continue
        y0, y1 = max(0, y - pad), min(height, y + h + pad)
        x0, x1 = max(0, x - pad), min(width, x + w + pad)
        inside = (labels[y0:y1, x0:x1] == k).astype(np.float32)
        alpha = cv2.GaussianBlur(inside, (0, 0), FEATHER).clip(0.0, 1.0)
        pieces.append(Piece(gray[y0:y1, x0:x1].astype(np.float32), alpha, y0, class_id))
    return pieces


def paste(gray: np.ndarray, piece: Piece, left: int) -> np.ndarray:
    """`gray` with `piece` blended in at column `left` (its own rows), its brightness moved to the destination's
    mean over the box. A new uint8 array."""
    h, w = piece.alpha.shape
    rows, cols = slice(piece.top, piece.top + h), slice(left, left + w)
    out = gray.astype(np.float32)
    under = out[rows, cols]
    moved = piece.pixels - piece.pixels.mean() + under.mean()
    out[rows, cols] = under * (1 - piece.alpha) + moved * piece.alpha
    return np.clip(out, 0, 255).astype(np.uint8)


class CopyPaste:
    """The augmentation: call it with a training image (before the random crop and flips), its target and the
    draw's RNG; returns the image and target, pasted or as they were."""

    def __init__(self, images_dir: str | Path, frame: pd.DataFrame, probability: float, margin: float = 0.1,
                 classes: list[int] | None = None):
        """`frame`: the training split's master rows; `margin`: the share of each side a random crop may remove
        (1 - Augment.crop)."""
        self.images_dir = Path(images_dir)
        self.probability, self.margin = probability, margin
        chosen = rare_classes(frame) if classes is None else list(classes)
        self.sources = {c: [(r.ImageId, getattr(r, f"EncodedPixels_{c}")) for r in frame.itertuples(index=False)
                            if getattr(r, f"EncodedPixels_{c}")] for c in chosen}
        self.sources = {c: s for c, s in self.sources.items() if s}
        self._pieces: dict[tuple[str, int, tuple[int, int]], list[Piece]] = {}

    @property
    def classes(self) -> list[int]:
        return sorted(self.sources)

    def pieces(self, image_id: str, rle_text: str, class_id: int, shape: tuple[int, int]) -> list[Piece]:
        """A source's pieces at the working `shape`, decoded and cut once (then kept in this process)."""
        key = (image_id, class_id, shape)
        if key not in self._pieces:
            full = read_gray(self.images_dir / image_id)
            mask = rle.decode(rle_text, full.shape)
            small = resize(full, shape) if full.shape != shape else full
            small_mask = cv2.resize(mask.view(np.uint8), shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
            self._pieces[key] = cut_pieces(small, small_mask, class_id)
        return self._pieces[key]

    def __call__(self, gray: np.ndarray, target: np.ndarray, rng: np.random.Generator):
        if not self.sources or rng.random() >= self.probability:
            return gray, target
        class_id = self.classes[int(rng.integers(len(self.classes)))]
        image_id, rle_text = self.sources[class_id][int(rng.integers(len(self.sources[class_id])))]
        pieces = self.pieces(image_id, rle_text, class_id, gray.shape)
        placed = [p for p in pieces if _fits(p, gray.shape, self.margin)]
        if not placed:
            return gray, target
        piece = placed[int(rng.integers(len(placed)))]
        lo, hi = _columns(piece, gray.shape[1], self.margin)
        target = np.array(target, copy=True)
        target[class_id - 1] = 1
        return paste(gray, piece, int(rng.integers(lo, hi + 1))), target


def _columns(piece: Piece, width: int, margin: float) -> tuple[int, int]:
    """The leftmost and rightmost column a piece may start at: inside the middle every crop keeps."""
    return int(np.ceil(margin * width)), int(np.floor((1 - margin) * width)) - piece.alpha.shape[1]


def _fits(piece: Piece, shape: tuple[int, int], margin: float) -> bool:
    """A piece fits inside the middle of the width and reaches into the middle of the height (so no crop removes
    it whole)."""
    height, width = shape
    lo, hi = _columns(piece, width, margin)
    bottom = piece.top + piece.alpha.shape[0]
    return lo <= hi and bottom > margin * height and piece.top < (1 - margin) * height
