"""Image -> model input, the one preprocessing shared by training, evaluation and every inference engine.

A run stores its image size and normalisation, so whatever loads the run preprocesses exactly as training did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from steelinspect.data.images import resize


NORMS = ("image", "fixed")


@dataclass(frozen=True)
class Preprocess:
    """Resize to (height, width), scale to [0, 1], normalise.

    norm "image" (the default) standardises each image by its own mean and standard deviation: plate
    brightness varies threefold between images and says nothing about defects, and removing it made the
    classifiers learn measurably faster on the synthetic data (test ROC AUC 0.95 against 0.92 after 8 epochs,
    VGG at 128x512). The result is on the scale of ImageNet-normalised inputs, so pretrained weights still fit.
    norm "fixed" is (x - mean) / std with the grey ImageNet statistics (runs made before "image" existed).
    """

    height: int = 256
    width: int = 512
    mean: float = 0.449
    std: float = 0.226
    norm: str = "image"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown normalisation {self.norm!r}; one of {', '.join(NORMS)}")

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocess":
        values = {k: data[k] for k in ("height", "width", "mean", "std")}
        return cls(**values, norm=data.get("norm", "fixed"))

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """uint8 (H0, W0) -> float32 (1, height, width)."""
        return self.normalize(resize(gray, self.size))

    def normalize(self, gray: np.ndarray) -> np.ndarray:
        """uint8 (H, W) already at the right size -> float32 (1, H, W)."""
        x = gray.astype(np.float32) * (1.0 / 255.0)
        if self.norm == "image":
            mean, std = float(x.mean()), float(x.std())
            x -= mean
            x *= 1.0 / max(std, 1e-3)  # a flat image stays finite
        else:
            x -= self.mean
            x *= 1.0 / self.std
        return x[None]


@lru_cache(maxsize=16)
def _area_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): each output pixel the mean of the input interval it covers, fractional pixels by their
    share, which is what OpenCV's INTER_AREA computes when shrinking."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for j in range(n_out):
        lo, hi = j * scale, (j + 1) * scale
        for i in range(int(lo), min(int(np.ceil(hi)), n_in)):
            weights[j, i] = max(0.0, min(hi, i + 1) - max(lo, i)) / scale
    return torch.from_numpy(weights).float()


def area_shrink(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) -> (..., h, w), h <= H and w <= W: resize()'s INTER_AREA as two matrix products, on tensors
    already preprocessed (matches OpenCV's float result to 1e-4; torch's own "area" mode is an adaptive pool,
    which differs when the sizes are not multiples)."""
    rows = _area_weights(int(x.shape[-2]), size[0]).to(x.device, x.dtype)
    cols = _area_weights(int(x.shape[-1]), size[1]).to(x.device, x.dtype)
    return rows @ x @ cols.T


def parse_size(text: str) -> tuple[int, int]:
    """'256x512' -> (256, 512); sides must be positive multiples of 32 (UNet/ResNet downsampling)."""
    from steelinspect.errors import ConfigError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"image size {text!r} is not HxW (e.g. 256x512)") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ConfigError(f"image size {text!r}: height and width must be positive multiples of 32")
    return h, w
