"""Shared helpers for the benchmarks: a synthetic dataset on demand and a timer."""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "steelinspect-bench"


def synthetic(images: int, seed: int = 0) -> Path:
    """A synthetic dataset of `images` images, generated once and reused between benchmark runs."""
    from steelinspect.data.synth import generate

    out = CACHE / f"synth-{images}-{seed}"
    if not (out / "train.csv").is_file():
        generate(out, images=images, seed=seed)
    return out


@contextmanager
def timer():
    box = {}
    start = time.perf_counter()
    yield box
    box["seconds"] = time.perf_counter() - start
