"""Images with their four class masks, for the segmenter: random crops, flips, brightness/contrast.

Training sees random full-height crops of the (optionally resized) image, e.g. 256x512 out of 256x1600: many
more steps per second than whole images, and the convolutional UNet then runs on the whole image at inference.
A share of the crops is placed over a defect so that small classes are not drowned by clean steel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE, NUM_CLASSES
from steelinspect.data.images import check_size, read_gray, reduction, resize
from steelinspect.data.paste import DefectPaste, paste_stream
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ConfigError


@dataclass(frozen=True)
class SegAugment:
    """Training-time augmentation. Brightness/contrast act on uint8 pixels: v * contrast + brightness. The
    strong preset adds a small shift and scale (image and masks warped together) and gamma, blur and noise
    (image only); each step draws from the RNG only when it is on, so the standard preset is unchanged."""

    hflip: bool = True
    vflip: bool = True
    brightness: float = 20.0  # +- grey levels
    contrast: float = 0.2  # +- relative
    positive_crop: float = 0.5  # share of crops centred on a defect pixel (when the image has one)
    shift: float = 0.0  # +- this fraction of the height and width
    scale: float = 0.0  # zoom 1 +- scale about the centre
    gamma: float = 0.0  # see data/dataset.py Augment
    blur: float = 0.0
    noise: float = 0.0


# --augment (TrainConfig.augment_preset); the classifiers' presets are data/dataset.py AUGMENT_PRESETS.
SEG_AUGMENT_PRESETS = {
    "standard": SegAugment(),
    "strong": SegAugment(brightness=30.0, contrast=0.3, shift=0.06, scale=0.1, gamma=0.3, blur=0.3, noise=6.0),
}


@dataclass(frozen=True)
class SegSample:
    image_id: str
    rles: tuple[str, str, str, str]  # class order, "" = no defect


def samples_from_master(master) -> list[SegSample]:
    """SegSamples from master-table rows (ImageId, EncodedPixels_1..4)."""
    from steelinspect.data.master import RLE_COLUMNS

    return [SegSample(r.ImageId, tuple(getattr(r, c) for c in RLE_COLUMNS)) for r in master.itertuples(index=False)]


class SegmentDataset(Dataset):
    """(image float32 (1, h, w), masks uint8 (4, h', w'), index) triples.

    `preprocess` fixes the working resolution (the whole image is resized to it; normally the full 256x1600)
    and the normalisation. With `crop_widths` (min, max), every sample is a full-height window of the working
    image whose width, a multiple of 32, is drawn once per epoch (so a batch stacks); None gives the whole
    image. Masks come at the working size, or at the original 256x1600 with `full_size_masks` (evaluation: the
    Kaggle metric is computed at full size whatever size the model works at). `augment` None disables flips
    and brightness/contrast.
    """

    def __init__(
        self,
        images_dir: str | Path,
        samples: Sequence[SegSample],
        preprocess: Preprocess,
        crop_widths: tuple[int, int] | None = None,
        augment: SegAugment | None = None,
        seed: int = 0,
        full_size_masks: bool = False,
        paste: DefectPaste | None = None,
    ):
        self.images_dir = Path(images_dir)
        self.samples = list(samples)
        self.preprocess = preprocess
        if crop_widths is not None:
            lo, hi = crop_widths
            if lo < 32 or hi < lo:
                raise ConfigError(f"crop widths {lo}..{hi}: need 32 <= min <= max")
            if full_size_masks:
                raise ConfigError("full-size masks are for whole images, not crops")
        self.crop_widths = crop_widths
        self.augment = augment
        self.seed = seed
        self.full_size_masks = full_size_masks
        self.paste = paste  # data/paste.py: training only, its mask added to its class's
        self.epoch = 0

    @property
    def targets(self) -> np.ndarray:
        """Which classes each image has, (N, 4) float32 (the image-level view of the masks)."""
        return np.array([[bool(r) for r in s.rles] for s in self.samples], dtype=np.float32).reshape(-1, NUM_CLASSES)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    # Masks are decoded at the Severstal size, so images must have it (see data.check.preflight); (width, height).
    required_size = IMAGE_SHAPE[::-1]

    def image_paths(self) -> list[Path]:
        return [self.images_dir / s.image_id for s in self.samples]

    def crop_width(self) -> int | None:
        """This epoch's crop width in pixels of the working image (None: whole images)."""
        if self.crop_widths is None:
            return None
        width = self.preprocess.width
        lo, hi = (min(max(32, v // 32 * 32), width) for v in self.crop_widths)
        choices = np.arange(lo, hi + 1, 32)
        return int(np.random.default_rng([self.seed, self.epoch]).choice(choices))

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 image (h, w) at the working size and bool masks (4, h, w), or (4, 256, 1600) when
        `full_size_masks`."""
        sample = self.samples[index]
        path = self.images_dir / sample.image_id
        size = self.preprocess.size
        # Training at a working size of at most 1/2 or 1/4 of the file's: decoded at that scale, then resized as
        # before. Evaluation decodes whole, as `predict` does, so the post-processing is tuned on what it will see.
        at_least = size if self.augment is not None else None
        factor = reduction(IMAGE_SHAPE[1], IMAGE_SHAPE[0], at_least)
        image = read_gray(path, at_least=at_least)
        if image.shape != tuple(-(-side // factor) for side in IMAGE_SHAPE):  # a JPEG decoded at that scale
            check_size(image, path)
        masks = np.stack([rle.decode(r, IMAGE_SHAPE) for r in sample.rles])
        if size != IMAGE_SHAPE:
            image = resize(image, size)
            if not self.full_size_masks:
                masks = np.stack([cv2.resize(m.view(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST) for m in masks]) > 0
        return image, masks

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        # A repeated draw of data.sampling.BalancedSampler is index + k * len(self): the same image, its own
        # augmentation and crop.
        item = index % len(self.samples)
        image, masks = self.load(item)
        # (seed, epoch, index): reproducible, new every epoch, the same whatever the number of workers.
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.augment is not None and self.paste is not None:
            drawn = self.paste.draw(image, paste_stream(self.seed, self.epoch, index))
            if drawn is not None:
                image, class_id, placed = drawn
                masks = masks.copy()
                masks[class_id - 1] |= placed
        if self.augment is not None:
            image, masks = augment(image, masks, self.augment, rng)
        # Normalised as a whole image before cropping: a crop then carries the statistics inference sees.
        x = self.preprocess.normalize(np.ascontiguousarray(image))
        width = self.crop_width()
        if width is not None:
            left = self._crop_left(masks, width, rng)
            x = x[:, :, left : left + width]
            masks = masks[:, :, left : left + width]
        y = np.ascontiguousarray(masks, dtype=np.uint8)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), item

    def _crop_left(self, masks: np.ndarray, width: int, rng: np.random.Generator) -> int:
        full = masks.shape[2]
        positive = self.augment.positive_crop if self.augment is not None else 0.0
        if positive > 0 and rng.random() < positive:
            xs = np.flatnonzero(masks.any(axis=(0, 1)))
            if len(xs):
                # A column holding a defect lands anywhere inside the window.
                x = xs[rng.integers(len(xs))]
                return int(np.clip(x - rng.integers(width), 0, full - width))
        return int(rng.integers(full - width + 1))


def augment(image: np.ndarray, masks: np.ndarray, aug: SegAugment, rng: np.random.Generator):
    """Flips and shift/scale (image and masks together), brightness/contrast, gamma, blur, noise (image only)."""
    if aug.hflip and rng.random() < 0.5:
        image, masks = image[:, ::-1], masks[:, :, ::-1]
    if aug.vflip and rng.random() < 0.5:
        image, masks = image[::-1], masks[:, ::-1]
    if aug.brightness or aug.contrast:
        alpha = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
        beta = rng.uniform(-aug.brightness, aug.brightness)
        image = cv2.convertScaleAbs(np.ascontiguousarray(image), alpha=alpha, beta=beta)
    if aug.shift or aug.scale:
        image, masks = shift_scale(image, masks, aug.shift, aug.scale, rng)
    if aug.gamma or aug.blur or aug.noise:
        from steelinspect.data.dataset import photometric

        image = photometric(image, aug.gamma, aug.blur, aug.noise, rng).astype(np.uint8)
    return image, masks


def shift_scale(image: np.ndarray, masks: np.ndarray, shift: float, scale: float, rng: np.random.Generator):
    """One affine warp (zoom about the centre, then a shift) of the image and its masks: the image bilinear, the
    masks nearest-neighbour, both with mirrored borders, so a defect and its mask move as one."""
    h, w = image.shape
    zoom = 1.0 + rng.uniform(-scale, scale)
    dx, dy = rng.uniform(-shift, shift) * w, rng.uniform(-shift, shift) * h
    matrix = np.float32([[zoom, 0, (1 - zoom) * w / 2 + dx], [0, zoom, (1 - zoom) * h / 2 + dy]])
    border = cv2.BORDER_REFLECT_101
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    warped = [cv2.warpAffine(np.ascontiguousarray(m, dtype=np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST,
                             borderMode=border) for m in masks]
    return image, np.stack(warped) > 0

