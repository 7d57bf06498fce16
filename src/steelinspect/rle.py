"""Run-length encoding of masks, Kaggle's convention.

Pixels are numbered from 1, top to bottom then left to right (column-major over an H-row image), and
`EncodedPixels` is "start length start length ...". An empty string means an empty mask.
"""

from __future__ import annotations

import numpy as np

from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE, NUM_CLASSES
from steelinspect.errors import RLEError


def parse(rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Validate an RLE string and return (starts, lengths), starts 0-based in column-major order.

    Raises RLEError naming the first thing that is wrong.
    """
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        rle = ""
    if not isinstance(rle, str):
        raise RLEError(f"RLE must be a string, got {type(rle).__name__}")
    tokens = rle.split()
    if not tokens:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if len(tokens) % 2:
        raise RLEError(f"odd number of tokens ({len(tokens)}): runs come as 'start length' pairs")
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        bad = next(t for t in tokens if not _is_int(t))
        raise RLEError(f"token {bad!r} is not an integer") from None
    starts, lengths = values[0::2], values[1::2]
    total = shape[0] * shape[1]
    if (starts < 1).any():
        i = int(np.argmax(starts < 1))
        raise RLEError(f"run {i + 1} starts at {starts[i]}: starts are numbered from 1")
    if (lengths < 1).any():
        i = int(np.argmax(lengths < 1))
        raise RLEError(f"run {i + 1} has length {lengths[i]}: lengths must be at least 1")
    starts = starts - 1
    ends = starts + lengths
    if (ends > total).any():
        i = int(np.argmax(ends > total))
        raise RLEError(
            f"run {i + 1} ({starts[i] + 1} {lengths[i]}) ends at pixel {ends[i]}, past the "
            f"{shape[0]}x{shape[1]} image ({total} pixels)"
        )
    if len(starts) > 1:
        bad = starts[1:] < ends[:-1]
        if bad.any():
            i = int(np.argmax(bad)) + 1
            what = "unsorted" if starts[i] < starts[i - 1] else "overlapping"
            raise RLEError(
                f"runs {i} and {i + 1} are {what}: run {i + 1} starts at {starts[i] + 1}, "
                f"before run {i} ends at {ends[i - 1]}"
            )
    return starts, lengths


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def decode(rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """RLE string -> bool mask of `shape` (H, W). Raises RLEError when the string is malformed."""
    starts, lengths = parse(rle, shape)
    height, width = shape
    flat = np.zeros(height * width, dtype=bool)
    for lo, n in zip(starts.tolist(), lengths.tolist()):
        flat[lo : lo + n] = True
    # Column-major numbering: the flat buffer is the transposed image.
    return flat.reshape(width, height).T


def encode(mask: np.ndarray) -> str:
    """Mask (H, W), nonzero = defect -> RLE string ("" for an empty mask)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RLEError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = mask.T.ravel() != 0
    padded = np.concatenate(([False], flat, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    edges[1::2] -= edges[0::2]
    return " ".join(map(str, edges.tolist()))


def area(rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> int:
    """Number of mask pixels, without decoding."""
    _, lengths = parse(rle, shape)
    return int(lengths.sum())


def build_mask(rles: dict[int, str] | list[str], shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Per-class RLE strings -> (4, H, W) bool mask stack (channel c-1 holds class c), channel-first like PyTorch.

    `rles` is either {class_id: rle} or a list of four strings in class order.
    """
    if not isinstance(rles, dict):
        if len(rles) != NUM_CLASSES:
            raise RLEError(f"expected {NUM_CLASSES} RLE strings, one per class, got {len(rles)}")
        rles = dict(zip(CLASS_IDS, rles))
    stack = np.zeros((NUM_CLASSES, *shape), dtype=bool)
    for class_id, rle in rles.items():
        if class_id not in CLASS_IDS:
            raise RLEError(f"class id {class_id} is outside {CLASS_IDS[0]}-{CLASS_IDS[-1]}")
        stack[class_id - 1] = decode(rle, shape)
    return stack


def build_rles(masks: np.ndarray) -> list[str]:
    """(4, H, W) mask stack -> four RLE strings in class order ("" where a class is empty)."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] != NUM_CLASSES:
        raise RLEError(f"mask stack must have shape ({NUM_CLASSES}, H, W), got {masks.shape}")
    return [encode(masks[c]) for c in range(NUM_CLASSES)]
