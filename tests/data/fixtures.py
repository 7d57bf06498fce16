"""Tiny hand-made datasets for data-layer tests (independent of the synthetic generator)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from steelinspect import rle


def write_image(path: Path, shape=(256, 1600), seed=0) -> None:
    rng = np.random.default_rng(seed)
    image = (100 + rng.normal(0, 10, shape)).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def box_rle(top, left, height, width, shape=(256, 1600)) -> str:
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return rle.encode(mask)


def make_dataset(root: Path, n_images: int = 4, rows: list[tuple[str, int, str]] | None = None, header="ImageId,ClassId,EncodedPixels") -> Path:
    """Images a.jpg, b.jpg, ...; label rows default to one class-3 box on a.jpg and class 1+4 on b.jpg."""
    root.mkdir(parents=True, exist_ok=True)
    names = [f"{chr(97 + i)}.jpg" for i in range(n_images)]
    for i, name in enumerate(names):
        write_image(root / "train_images" / name, seed=i)
    if rows is None:
        rows = [
            ("a.jpg", 3, box_rle(10, 100, 50, 200)),
            ("b.jpg", 1, box_rle(0, 0, 20, 20)),
            ("b.jpg", 4, box_rle(100, 800, 100, 300)),
        ]
    lines = [header] + [f"{i},{c},{r}" for i, c, r in rows]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root
