"""Streaming, batched image loading for inference.

Images are decoded and preprocessed in a thread pool (OpenCV releases the GIL) a bounded window ahead of the
consumer, so decoding overlaps model compute and memory stays flat however many images there are. An image
that cannot be read is reported through `on_problem` and skipped, never fatal.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from steelinspect.data.images import decoding_pool, read_gray
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ImageError, Problem


@dataclass
class Batch:
    """Image ids and paths, one stacked float32 input (N, 1, H, W) per distinct preprocessing, and the original
    grey images when asked for (overlays, full-size segmentation)."""

    image_ids: list[str]
    paths: list[Path]
    inputs: dict[Preprocess, np.ndarray]
    originals: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_ids)

    def input(self, preprocess: Preprocess) -> np.ndarray:
        return self.inputs[preprocess]


def _load(path: Path, preprocesses: tuple[Preprocess, ...], keep: bool):
    try:
        gray = read_gray(path)
    except ImageError as exc:
        return Problem("bad_image", str(path), exc.problem)
    return [p(gray) for p in preprocesses], (gray if keep else None)


def iter_batches(
    paths: Iterable[Path],
    preprocesses: Iterable[Preprocess],
    batch_size: int = 16,
    workers: int = 4,
    keep_originals: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
    on_image: Callable[[int], None] | None = None,
) -> Iterator[Batch]:
    """Batches in input order. At most about two batches are in flight, whatever the number of images."""
    preps = tuple(dict.fromkeys(preprocesses))  # distinct, in order
    window = max(2 * batch_size, 2 * workers)
    paths = iter(paths)
    pending: deque = deque()
    ids: list[str] = []
    kept_paths: list[Path] = []
    arrays: list[list[np.ndarray]] = []
    originals: list[np.ndarray] = []

    def flush() -> Batch:
        inputs = {p: np.stack([a[i] for a in arrays]) for i, p in enumerate(preps)}
        batch = Batch(list(ids), list(kept_paths), inputs, list(originals))
        ids.clear(), kept_paths.clear(), arrays.clear(), originals.clear()
        return batch

    with decoding_pool(workers) as pool:
        def fill() -> None:
            while len(pending) < window:
                path = next(paths, None)
                if path is None:
                    return
                path = Path(path)
                pending.append((path, pool.submit(_load, path, preps, keep_originals)))

        fill()
        while pending:
            path, future = pending.popleft()
            fill()
            result = future.result()
            if on_image:
                on_image(1)
            if isinstance(result, Problem):
                if on_problem:
                    on_problem(result)
                continue
            tensors, gray = result
            ids.append(path.name)
            kept_paths.append(path)
            arrays.append(tensors)
            if keep_originals:
                originals.append(gray)
            if len(ids) == batch_size:
                yield flush()
        if ids:
            yield flush()
