"""Image -> model input, the one preprocessing shared by training, evaluation and every inference engine.

A run stores its image size and normalisation, so whatever loads the run preprocesses exactly as training did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from steelinspect.data.images import resize


@dataclass(frozen=True)
class Preprocess:
    """Resize to (height, width), scale to [0, 1], normalise. Grey ImageNet statistics, so that ImageNet
    weights adapted to one channel (summed RGB filters) see inputs on the scale they were trained on."""

    height: int = 256
    width: int = 512
    mean: float = 0.449
    std: float = 0.226

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocess":
        return cls(**{k: data[k] for k in ("height", "width", "mean", "std")})

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """uint8 (H0, W0) -> float32 (1, height, width)."""
        return self.normalize(resize(gray, self.size))

    def normalize(self, gray: np.ndarray) -> np.ndarray:
        """uint8 (H, W) already at the right size -> float32 (1, H, W)."""
        x = gray.astype(np.float32) * (1.0 / 255.0)
        x -= self.mean
        x *= 1.0 / self.std
        return x[None]


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
