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
        height, width = gray.shape
        if self.crop < 1:
            h = int(height * rng.uniform(self.crop, 1))
            w = int(width * rng.uniform(self.crop, 1))
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            gray = gray[top : top + h, left : left + w]
        if rng.random() < self.hflip:
            gray = gray[:, ::-1]
        if rng.random() < self.vflip:
            gray = gray[::-1, :]
        gain = rng.uniform(1 - self.contrast, 1 + self.contrast)
        shift = rng.uniform(-self.brightness, self.brightness)
        mean = float(gray.mean())
        out = (gray.astype(np.float32) - mean) * gain + mean + shift
        out = np.clip(out, 0, 255)
        if self.gamma or self.blur or self.noise:
            out = photometric(out, self.gamma, self.blur, self.noise, rng)
        return np.ascontiguousarray(out.astype(np.uint8))


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
    """(image, target) pairs: image float32 (1, H, W) preprocessed; target as given (float vector or class index)."""

    def __init__(
        self,
        images_dir: Path,
        image_ids: list[str],
        targets: np.ndarray,
        preprocess: Preprocess,
        augment: Augment | None = None,
        seed: int = 0,
        paste: DefectPaste | None = None,
    ):
        if len(image_ids) != len(targets):
            raise ValueError(f"{len(image_ids)} images but {len(targets)} targets")
        self.images_dir = Path(images_dir)
        self.image_ids = list(image_ids)
        self.targets = targets
        self.preprocess = preprocess
        self.augment = augment
        self.paste = paste  # data/paste.py: training only, before the augmentation
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

    def load(self, index: int, target: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        # A repeated draw of data.sampling.BalancedSampler is index + k * len(self): the same image, its own
        # augmentation. A training image is decoded at 1/2 or 1/4 scale where it shrinks that much anyway, keeping
        # enough pixels for its smallest crop to be resized down, not up. An evaluation image is decoded whole, as
        # `predict` does: the thresholds tuned on it and the metrics reported are then those of prediction.
        size = None
        if self.augment is not None:
            size = self.preprocess.size
            if self.augment.crop < 1:
                size = tuple(-(-side * 10 // round(self.augment.crop * 10)) for side in size)
        gray = read_gray(self.images_dir / self.image_ids[index % len(self.image_ids)], at_least=size)
        if self.augment is not None:
            if self.paste is not None and target is not None:
                gray, target = self.paste(gray, target, paste_stream(self.seed, self.epoch, index))
            gray = self.augment(gray, np.random.default_rng([self.seed, self.epoch, index]))
        return gray, target

    def __getitem__(self, index: int):
        item = index % len(self.image_ids)
        gray, target = self.load(index, self.targets[item])
        return torch.from_numpy(self.preprocess(gray)), torch.as_tensor(target), item


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
