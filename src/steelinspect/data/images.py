"""Find, decode (grayscale) and resize images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from steelinspect.constants import IMAGE_EXTENSIONS, IMAGE_SHAPE
from steelinspect.errors import ImageError

cv2.setNumThreads(1)  # parallelism comes from our own worker pools; OpenCV's would oversubscribe


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(source: str | Path | list[str | Path]) -> list[Path]:
    """Image files of a folder (sorted, not recursive), or the given files as paths.

    Raises ImageError when a folder does not exist or a named file is missing.
    """
    if isinstance(source, (list, tuple)):
        paths = []
        for item in source:
            item = Path(item)
            if item.is_dir():
                paths.extend(list_images(item))
            elif item.is_file():
                paths.append(item)
            else:
                raise ImageError("no such file or folder", item)
        return paths
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ImageError("no such file or folder", source)
    return sorted(p for p in source.iterdir() if p.is_file() and is_image_file(p))


def decode_gray(data: bytes, name: str | Path = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W). ImageError when they are not a readable image."""
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
    if image is None:
        raise ImageError("not a readable image (corrupt or unsupported format)", name)
    return image


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 grayscale (H, W). The Severstal JPEGs are 3-channel but grey."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read file ({exc.strerror or exc})", path) from None
    return decode_gray(data, path)


def check_size(image: np.ndarray, name: str | Path, shape: tuple[int, int] = IMAGE_SHAPE) -> None:
    if image.shape[:2] != tuple(shape):
        raise ImageError(
            f"image is {image.shape[1]}x{image.shape[0]}, expected {shape[1]}x{shape[0]} (width x height)", name
        )


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (H, W); INTER_AREA to shrink (the fastest measured here, and alias-free)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrink = height <= image.shape[0] and width <= image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
