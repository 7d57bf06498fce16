"""NumPy activations of an engine's logits (ONNX Runtime and Torch engines both return NumPy arrays)."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-x) overflows float32 below x = -88 (a confident segmenter's clean pixels), which warned on every batch;
    # clipped there, the result is the same 0 to float32 precision.
    return 1.0 / (1.0 + np.exp(-np.clip(x, -88.0, 88.0)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Over axis 1 (the classes of a batch of logits)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
