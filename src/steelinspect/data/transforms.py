"""Image -> model input, the one preprocessing shared by training, evaluation and every inference engine.

A run stores its image size and normalisation, so whatever loads the run preprocesses exactly as training did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

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
