"""Tiny hand-made datasets for data-layer tests (independent of the synthetic generator)."""

from __future__ import annotations

import struct
import zlib
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


def small_jpeg(shape=(8, 8)) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full(shape, 128, np.uint8))
    assert ok
    return buf.tobytes()


def bomb_jpeg(width: int, height: int) -> bytes:
    """A tiny valid JPEG (a few hundred bytes) whose frame header declares width x height pixels: a decoder that
    trusts it allocates the whole image."""
    data = bytearray(small_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bomb_png(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR (with a correct CRC) declares width x height pixels."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def bomb_bmp(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".bmp", np.zeros((8, 8), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def bomb_tiff(width: int, height: int) -> bytes:
    """A classic little-endian TIFF whose first directory declares width x height (LONG fields)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 64)]
    body = b"\x80" * 64
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8 + len(body)) + body + ifd
