"""Copy-paste of defects for rare classes (`train ... --paste P`).

A rare class has a few dozen training images; the balanced sampler shows them more often, but always on the same
plates, so a model can learn the plates instead of the defect. Here a training image gets, with probability P,
one more defect cut from another training image (Ghiasi et al. 2021, "Simple Copy-Paste"), and its target gains
that class (the classifiers), or its masks gain the defect's mask (tiles, the segmenter). The class is drawn
uniformly over the classes that have donors, so the rarest are pasted as often as the common ones.

A defect is moved as a change of brightness, not as pixels: inside its mask the donor image is divided by its
own background (a normalised Gaussian blur of the pixels outside the mask), the donor's grain is taken out of that
ratio, and the target is multiplied by it, feathered at the mask's edge. So a dark crack stays a dark crack on a
brighter or darker plate, and neither an edge nor the grain of the donor's plate comes with it. The defect keeps
its rows (its height and place across the strip) and is moved to random columns, mirrored half of the time. A
paste that would land on a black (unlit) part of the target is not made: the target would be labelled with a
defect nobody can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import read_gray, resize
from steelinspect.data.master import RLE_COLUMNS

DARK = 16.0  # grey level: a target region darker than this on average is an unlit part of the plate


def paste_stream(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream a training draw pastes with: its own, beside the (seed, epoch, index) stream of the
    augmentation, so the augmentation draws what it drew without pasting and a run repeats."""
    return np.random.default_rng([seed, epoch, index, 1])


@dataclass(frozen=True)
class Donor:
    image_id: str
    class_id: int
    code: str  # the class's mask on that image (RLE, at IMAGE_SHAPE)


def donors_of(frame: pd.DataFrame) -> dict[int, list[Donor]]:
    """Every (image, class) mask of the master rows, by class; a class without masks is left out."""
    out: dict[int, list[Donor]] = {}
    for class_id, column in zip(CLASS_IDS, RLE_COLUMNS):
        for image_id, code in zip(frame.ImageId, frame[column]):
            if isinstance(code, str) and code:
                out.setdefault(class_id, []).append(Donor(image_id, class_id, code))
    return out


def defect_ratio(donor: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """float32 (H, W): the donor's pixels over its background, where the background at a pixel is the Gaussian
    mean of the pixels outside the mask around it (normalised convolution), so a large defect does not darken
    its own background. 1 where the donor is plain plate. The background is smooth at `sigma`, so it is
    estimated on a grid about sigma / 4 times coarser: the same, for a fraction of the time."""
    outside = (~mask).astype(np.float32)
    image = donor.astype(np.float32) + 1.0
    height, width = image.shape
    factor = max(1, int(sigma // 4))
    coarse = (max(1, height // factor), max(1, width // factor))
    num = cv2.GaussianBlur(resize(image * outside, coarse), (0, 0), sigma / factor)
    den = cv2.GaussianBlur(resize(outside, coarse), (0, 0), sigma / factor)
    fallback = float(image[~mask].mean()) if outside.any() else float(image.mean())
    background = np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback).astype(np.float32)
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return image / np.maximum(background, 1.0)


def plate_grain_removed(change: np.ndarray, mask: np.ndarray, blur: float, k: float = 1.0) -> np.ndarray:
    """The donor's relative change of brightness without its plate's grain: lightly blurred, then shrunk towards 0
    by k times the grain's spread (the robust standard deviation outside the mask). Multiplied in whole, the
    donor's grain would lie on the target's own, and the pasted polygon would be the one noisier patch of the
    plate: a seam a model learns instead of the defect."""
    change = cv2.GaussianBlur(change.astype(np.float32), (0, 0), blur)
    outside = change[~mask]
    if outside.size < 16:
        return change
    spread = 1.4826 * float(np.median(np.abs(outside - np.median(outside))))
    return np.sign(change) * np.maximum(np.abs(change) - k * spread, 0.0)


class DefectPaste:
    """One defect from the donors, pasted with probability `probability`. `draw` gives the pasted image, the
    class and where its mask landed (the segmenter's and the tiles' datasets add the mask); calling it with an
    image-level target gives the target the class (`head` "binary": (1,) becomes 1; "multilabel": (4,)); `apply`
    does the same and adds the defect to --mask-aux's masks."""

    def __init__(self, images_dir: Path, donors: dict[int, list[Donor]], probability: float, head: str = "multilabel"):
        if head not in ("binary", "multilabel"):
            raise ValueError(f"pasting is for the binary and multilabel heads, not {head!r}")
        self.images_dir, self.probability, self.head = Path(images_dir), probability, head
        self.donors = {c: d for c, d in sorted(donors.items()) if d}

    def __call__(self, gray: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.apply(gray, target, rng)[:2]

    def apply(self, gray: np.ndarray, target: np.ndarray, rng: np.random.Generator,
              planes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(image, target, planes) with the defect pasted or not: `planes` (one mask per target channel at the
        image's size, --mask-aux's; None: none) gain where it landed. The draws are the same with or without."""
        drawn = self.draw(gray, rng)
        if drawn is None:
            return gray, target, planes
        pasted, class_id, placed = drawn
        channel = self.channel(class_id)
        target = np.array(target, dtype=np.float32, copy=True)
        target[channel] = 1.0
        if planes is not None:
            planes = planes.copy()
            planes[channel] |= placed.astype(planes.dtype)
        return pasted, target, planes

    def channel(self, class_id: int) -> int:
        """The target channel a pasted class sets: the binary head's one output, or the class's own."""
        return 0 if self.head == "binary" else class_id - 1

    def draw(self, gray: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray] | None:
        """(pasted image, class id, bool mask of the pasted defect at the image's size), or None: nothing pasted
        (the probability, no donor, or an unlit landing place)."""
        if not self.donors or rng.random() >= self.probability:
            return None
        classes = list(self.donors)
        pool = self.donors[classes[int(rng.integers(len(classes)))]]
        donor = pool[int(rng.integers(len(pool)))]
        pasted = self.paste(gray, donor, rng)
        return None if pasted is None else (pasted[0], donor.class_id, pasted[1])

    def paste(self, gray: np.ndarray, donor: Donor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """(`gray` with the donor's defect multiplied in, the donor's mask where it landed); None when it would
        land on an unlit part."""
        height, width = gray.shape
        source = resize(read_gray(self.images_dir / donor.image_id, at_least=(height, width)), (height, width))
        mask = rle.decode(donor.code, IMAGE_SHAPE)
        if mask.shape != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
        if not mask.any():
            return None  # a mask smaller than a pixel at this scale
        scale = width / IMAGE_SHAPE[1]
        sigma, feather = max(2.0, 32.0 * scale), max(0.5, 2.0 * scale)
        cols = np.flatnonzero(mask.any(axis=0))
        # Only the columns near the mask matter: the background's blur reaches about 3 sigma.
        w0, w1 = max(0, int(cols[0] - 3 * sigma)), min(width, int(cols[-1] + 1 + 3 * sigma))
        ratio = defect_ratio(source[:, w0:w1], mask[:, w0:w1], sigma)
        change = plate_grain_removed(ratio - 1.0, mask[:, w0:w1], max(0.5, 0.7 * scale))
        alpha = cv2.GaussianBlur(mask[:, w0:w1].astype(np.float32), (0, 0), feather)
        cols = np.flatnonzero(alpha.max(axis=0) > 1e-3)
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        alpha, change, mask = alpha[:, c0:c1], change[:, c0:c1], mask[:, w0:w1][:, c0:c1]
        if rng.random() < 0.5:
            alpha, change, mask = alpha[:, ::-1], change[:, ::-1], mask[:, ::-1]
        left = int(rng.integers(0, width - (c1 - c0) + 1))
        region = gray[:, left : left + c1 - c0].astype(np.float32)
        if region[mask].mean() < DARK:
            return None
        out = gray.astype(np.float32)
        out[:, left : left + c1 - c0] = region * (1.0 + alpha * change)
        placed = np.zeros((height, width), bool)
        placed[:, left : left + c1 - c0] = mask
        return np.clip(out, 0, 255).astype(np.uint8), placed


def defect_paste(images_dir: Path, frame: pd.DataFrame, probability: float, head: str = "multilabel") -> DefectPaste | None:
    """--paste's augmentation over a training split (its masks are the donors); None when it is off."""
    return DefectPaste(images_dir, donors_of(frame), probability, head) if probability else None
