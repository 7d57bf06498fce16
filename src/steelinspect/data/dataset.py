"""Torch datasets for classification, and the training augmentation.

Augmentation randomness comes from an RNG seeded by (seed, epoch, index), so a sample's augmentation does not
depend on the number of loader workers or processes, and a resumed run sees exactly what an uninterrupted one
would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from steelinspect.data.images import read_gray
from steelinspect.data.mask_grid import decode_masks, grid_targets
from steelinspect.data.paste import DefectPaste, paste_stream
from steelinspect.data.transforms import Preprocess


@dataclass(frozen=True)
class Augment:
    """Training-only augmentation: a random crop (resized back by preprocessing: a shift and a scale), flips,
    brightness/contrast, and (the strong preset) gamma, blur and noise. Each step draws from the RNG only when it
    is on, so the standard preset draws exactly what it did before the strong one existed."""

    hflip: float = 0.5
    vflip: float = 0.5
    brightness: float = 20.0  # grey levels added, +-
    contrast: float = 0.2  # gain 1 +- contrast
    crop: float = 0.9  # keep at least this fraction of each side
    gamma: float = 0.0  # gamma exp(+-gamma): a non-linear tone change that per-image normalisation does not undo
    blur: float = 0.0  # probability of a Gaussian blur (sigma 0.5..1.2 px: focus and motion of a real camera)
    noise: float = 0.0  # Gaussian noise, standard deviation up to this many grey levels (on half of the images)

    def __call__(self, gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(gray, rng)[0]

    def apply(self, gray: np.ndarray, rng: np.random.Generator,
              masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The augmented image, and `masks` (K, H, W) at the image's size moved by the same crop and flips (the
        targets of --mask-aux; None: none). The draws are the same with or without masks."""
        height, width = gray.shape
        if self.crop < 1:
            h = int(height * rng.uniform(self.crop, 1))
            w = int(width * rng.uniform(self.crop, 1))
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            gray = gray[top : top + h, left : left + w]
            masks = None if masks is None else masks[:, top : top + h, left : left + w]
        if rng.random() < self.hflip:
            gray = gray[:, ::-1]
            masks = None if masks is None else masks[:, :, ::-1]
        if rng.random() < self.vflip:
            gray = gray[::-1, :]
            masks = None if masks is None else masks[:, ::-1, :]
        gain = rng.uniform(1 - self.contrast, 1 + self.contrast)
        shift = rng.uniform(-self.brightness, self.brightness)
        mean = float(gray.mean())
        out = (gray.astype(np.float32) - mean) * gain + mean + shift
        out = np.clip(out, 0, 255)
        if self.gamma or self.blur or self.noise:
            out = photometric(out, self.gamma, self.blur, self.noise, rng)
        return np.ascontiguousarray(out.astype(np.uint8)), None if masks is None else np.ascontiguousarray(masks)


def photometric(image: np.ndarray, gamma: float, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma, blur and noise on a float32 image in [0, 255] (the strong presets of both datasets); float32 out,
    clipped to [0, 255]."""
    import cv2

    image = np.asarray(image, dtype=np.float32)
    if gamma:
        image = 255.0 * (image * (1 / 255.0)) ** float(np.exp(rng.uniform(-gamma, gamma)))
    if blur and rng.random() < blur:
        image = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), float(rng.uniform(0.5, 1.2)))
    if noise and rng.random() < 0.5:
        image = image + rng.normal(0.0, rng.uniform(0.3, 1.0) * noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 255)


# --augment (TrainConfig.augment_preset). strong is for a few real images: real plates differ in exposure, lamp
# gamma, focus and position far more than 24 of them can show.
AUGMENT_PRESETS = {
    "standard": Augment(),
    "strong": Augment(brightness=30.0, contrast=0.3, crop=0.75, gamma=0.3, blur=0.3, noise=6.0),
}


class ImageDataset(Dataset):
    """(image, target, index) triples: image float32 (1, H, W) preprocessed; target as given (float vector or class
    index). With `mask_rles` (training with --mask-aux; each image's RLE per class) a fourth item: where each target
    channel's mask lies on the classifier's stride-16 feature map (data/mask_grid.py), moved with the image by
    pasting, cropping and flips; a one-output target (the binary head) gets one channel, any class."""

    def __init__(
        self,
        images_dir: Path,
        image_ids: list[str],
        targets: np.ndarray,
        preprocess: Preprocess,
        augment: Augment | None = None,
        seed: int = 0,
        paste: DefectPaste | None = None,
        mask_rles: list[list[str]] | None = None,
    ):
        if len(image_ids) != len(targets):
            raise ValueError(f"{len(image_ids)} images but {len(targets)} targets")
        if mask_rles is not None and (augment is None or len(mask_rles) != len(image_ids)):
            raise ValueError("mask targets are for a training set: one list of RLEs per image, with augmentation")
        self.images_dir = Path(images_dir)
        self.image_ids = list(image_ids)
        self.targets = targets
        self.preprocess = preprocess
        self.augment = augment
        self.paste = paste  # data/paste.py: training only, before the augmentation
        self.mask_rles = mask_rles
        self.mask_union = np.ndim(targets) == 2 and np.shape(targets)[1] == 1
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # Images of any size are resized by preprocessing (see data.check.preflight).
    required_size = None

    def image_paths(self) -> list[Path]:
        return [self.images_dir / i for i in self.image_ids]

    def __len__(self) -> int:
        return len(self.image_ids)

    def load(self, index: int, target: np.ndarray | None = None,
             masks: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(gray, target, masks): `masks` True (with mask_rles) gives each target channel's mask at the augmented
        image's size, else None."""
        # A repeated draw of data.sampling.BalancedSampler is index + k * len(self): the same image, its own
        # augmentation. A training image is decoded at 1/2 or 1/4 scale where it shrinks that much anyway, keeping
        # enough pixels for its smallest crop to be resized down, not up. An evaluation image is decoded whole, as
        # `predict` does: the thresholds tuned on it and the metrics reported are then those of prediction.
        size = None
        if self.augment is not None:
            size = self.preprocess.size
            if self.augment.crop < 1:
                size = tuple(-(-side * 10 // round(self.augment.crop * 10)) for side in size)
        item = index % len(self.image_ids)
        gray = read_gray(self.images_dir / self.image_ids[item], at_least=size)
        planes = None
        if masks and self.mask_rles is not None:
            planes = decode_masks(self.mask_rles[item], gray.shape, union=self.mask_union)
        if self.augment is not None:
            if self.paste is not None and target is not None:
                rng = paste_stream(self.seed, self.epoch, index)
                gray, target, planes = self.paste.apply(gray, target, rng, planes)
            gray, planes = self.augment.apply(gray, np.random.default_rng([self.seed, self.epoch, index]), planes)
        return gray, target, planes

    def __getitem__(self, index: int):
        item = index % len(self.image_ids)
        gray, target, planes = self.load(index, self.targets[item], masks=self.mask_rles is not None)
        x, y = torch.from_numpy(self.preprocess(gray)), torch.as_tensor(target)
        if planes is None:
            return x, y, item
        return x, y, item, torch.from_numpy(grid_targets(planes, self.preprocess.size))


class EpochSampler(Sampler[int]):
    """Seeded order per epoch, sharded across processes so that each global batch is the same set of images
    whatever the number of processes: rank r takes its contiguous slice of every global batch."""

    def __init__(self, size: int, global_batch: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.size, self.global_batch, self.seed, self.shuffle = size, global_batch, seed, shuffle
        self.rank, self.world, self.epoch = rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return np.arange(self.size)

    def __iter__(self):
        order = self.order()
        if self.world == 1:
            return iter(order.tolist())
        per_rank = self.global_batch // self.world
        mine = []
        for start in range(0, self.size, self.global_batch):
            batch = order[start : start + self.global_batch]
            # Pad a short last batch by wrapping, so every rank runs the same number of steps.
            if len(batch) < self.global_batch:
                batch = np.resize(batch, self.global_batch) if len(batch) else batch
            mine.extend(batch[self.rank * per_rank : (self.rank + 1) * per_rank].tolist())
        return iter(mine)

    def __len__(self) -> int:
        if self.world == 1:
            return self.size
        batches = -(-self.size // self.global_batch)
        return batches * (self.global_batch // self.world)
