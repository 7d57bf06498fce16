"""Run-length encoding of masks, Kaggle's convention.

Pixels are numbered from 1, top to bottom then left to right (column-major over an H-row image), and
`EncodedPixels` is "start length start length ...". An empty string means an empty mask.
"""

from __future__ import annotations

import re

import numpy as np

from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE, NUM_CLASSES
from steelinspect.errors import RLEError


# A token: an optional sign and ASCII digits (int() would also take "1_000" and other scripts' digits).
_TOKEN = re.compile(r"[+-]?[0-9]+")


def parse(rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Validate an RLE string and return (starts, lengths), starts 0-based in column-major order.

    Raises RLEError naming the first thing that is wrong. Every token is bounded by the image's pixel count
    before any arithmetic, so a huge number is refused, never wrapped around in int64.
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
    joined = "".join(tokens)
    if not (joined.isascii() and joined.isdigit()):  # the common case (plain digits) in one C-level test
        for token in tokens:
            if not _TOKEN.fullmatch(token):
                raise RLEError(f"token {_show(token)} is not an integer")
    total = int(shape[0]) * int(shape[1])
    if total >= 10**17:
        raise RLEError(f"image shape {shape} is too large for an RLE mask")
    try:
        values = np.array(tokens, dtype=np.int64)
    except (OverflowError, ValueError):
        # A token past int64 (only a malformed row holds one): clamp every token to one past the image, keeping
        # its sign, so no huge number meets int64; the messages below quote the token as written.
        values = np.array([_clamp(t, total) for t in tokens], dtype=np.int64)
    starts, lengths = values[0::2], values[1::2]
    # Every token is bounded by the image's pixel count before any arithmetic on it (one test in the common case).
    if ((starts < 1) | (lengths < 1) | (starts > total) | (lengths > total)).any():
        _out_of_range(tokens, starts, lengths, shape, total)
    # Both are in 1..total now, so the sums below stay far inside int64.
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


def _out_of_range(tokens: list[str], starts: np.ndarray, lengths: np.ndarray, shape, total: int) -> None:
    """RLEError for the first start or length outside 1..total (there is one)."""
    size = f"{shape[0]}x{shape[1]} image ({total} pixels)"
    for bad, token, what in (
        (starts < 1, 0, "starts at {}: starts are numbered from 1"),
        (lengths < 1, 1, "has length {}: lengths must be at least 1"),
        (starts > total, 0, "starts at pixel {}, past the " + size),
        (lengths > total, 1, "has length {}, longer than the " + size),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            raise RLEError(f"run {i + 1} " + what.format(_show(tokens[2 * i + token], quote=False)))


def _clamp(token: str, total: int) -> int:
    """A validated integer token as an int in [-(total + 1), total + 1], without converting a long one."""
    sign = -1 if token[0] == "-" else 1
    body = token.lstrip("+-").lstrip("0") or "0"
    if len(body) > len(str(total)):
        return sign * (total + 1)
    return sign * min(int(body), total + 1)


def _show(token: str, quote: bool = True, limit: int = 30) -> str:
    """A token for a message, cut short when long (a malformed row may hold a megabyte of digits)."""
    text = token if len(token) <= limit else f"{token[:limit]}... ({len(token)} characters)"
    return repr(text) if quote else text


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
