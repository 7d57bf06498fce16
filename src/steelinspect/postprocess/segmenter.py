"""Segmenter probabilities on whole images, at full 256x1600 size, optionally averaged over flips (TTA).

The UNet is convolutional, so it runs on the whole image even when it was trained on crops. When the run works
at a reduced size, probabilities are resized back to 256x1600, so masks, areas and boxes are always in pixels of
the original image. Works with any inference engine: a callable from a float32 batch (N, 1, h, w) to logits.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from steelinspect.constants import IMAGE_SHAPE
from steelinspect.postprocess.activations import sigmoid

Logits = Callable[[np.ndarray], np.ndarray]


# A UNet at 256x1600 holds about 0.3 GB of activations per image: the segmenter takes a batch this many images
# at a time, so memory stays bounded whatever batch the classifiers use (16 at once peaked at 6 GB).
CHUNK = 4


def segment_probs(logits: Logits, x: np.ndarray, tta: bool = False, chunk: int = CHUNK) -> np.ndarray:
    """Sigmoid probabilities float32 (N, 4, h, w) of a preprocessed batch (N, 1, h, w), `chunk` images at a time.

    `tta` averages the identity, the horizontal and the vertical flip (each flipped back).
    """
    if len(x) > chunk:
        return np.concatenate([segment_probs(logits, x[i : i + chunk], tta, chunk) for i in range(0, len(x), chunk)])
    probs = sigmoid(logits(x).astype(np.float32))
    if tta:
        for axis in (-1, -2):
            flipped = np.ascontiguousarray(np.flip(x, axis=axis))
            probs += np.flip(sigmoid(logits(flipped).astype(np.float32)), axis=axis)
        probs /= 3.0
    return probs


def torch_logits(model: torch.nn.Module, device: torch.device | str = "cpu") -> Logits:
    """A torch model as a NumPy logits function (eval mode, no autograd)."""
    model.eval()

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run


def to_full_size(probs: np.ndarray, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """float (4, h, w) -> float32 (4, H, W), bilinear; unchanged when already full size."""
    if probs.shape[1:] == tuple(shape):
        return probs.astype(np.float32, copy=False)
    return np.stack([cv2.resize(p, shape[::-1], interpolation=cv2.INTER_LINEAR) for p in probs.astype(np.float32)])
