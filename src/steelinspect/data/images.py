"""Find, decode (grayscale) and resize images.

Every image is decoded here, and only after its header: the size an image declares is read without decoding
(JPEG, PNG, BMP, TIFF; anything else is refused) and refused over the pixel limit, so a tiny file declaring a
huge image never reaches the decoder.
"""

from __future__ import annotations

import os
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from steelinspect.constants import IMAGE_EXTENSIONS, IMAGE_SHAPE, MAX_PIXELS, MAX_PIXELS_ENV
from steelinspect.errors import ConfigError, ImageError, ImageTooLargeError


def opencv_single_threaded() -> None:
    """Switch OpenCV's own thread pool off. Called where steelinspect starts its own parallel work (decoding
    threads, DataLoader workers, the server), not at import: on top of those, OpenCV's threads would
    oversubscribe the cores."""
    cv2.setNumThreads(1)


def decoding_pool(workers: int) -> ThreadPoolExecutor:
    """Threads that decode images: cv2 releases the GIL while decoding, so they run in parallel."""
    opencv_single_threaded()
    return ThreadPoolExecutor(max_workers=max(1, workers))


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


def pixel_limit(value: int | None = None) -> int:
    """The pixel limit: `value` when given, else $STEELINSPECT_MAX_PIXELS, else MAX_PIXELS."""
    if value is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return MAX_PIXELS
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{MAX_PIXELS_ENV}={text!r} is not a whole number of pixels") from None
        if value < 1:
            raise ConfigError(f"{MAX_PIXELS_ENV}={text!r}: the pixel limit must be at least 1")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"max_pixels must be a whole number of pixels >= 1, got {value!r}")
    return value


def max_bytes(limit: int) -> int:
    """Largest file accepted under a pixel limit: 16 bytes per pixel (twice a 16-bit RGBA image stored
    uncompressed) plus 1 MiB of metadata, so a huge file is refused before it is read into memory."""
    return 16 * limit + (1 << 20)


class _Truncated(Exception):
    """The bytes end before the header does (a caller holding only the file's start reads the rest)."""


# JPEG start-of-frame markers: C0-CF except C4 (DHT), C8 (JPG) and CC (DAC), which are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The next marker with a length field: fill 0xFFs, then a byte that is not a stuffed zero, TEM, RSTn or SOI
# (those carry no length; stray bytes in between are skipped, as libjpeg does).
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\x01\xd0-\xd8\xff])")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    # Walk the segments as libjpeg does (skipping stray bytes and fill 0xFFs before a marker) to the first frame
    # header, the one it decodes (a second frame header is an error there).
    pos, n = 2, len(data)
    while True:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            raise _Truncated
        marker, pos = data[found.start(1)], found.end()
        if marker == 0xD9 or marker == 0xDA:
            raise ImageError("not a readable image (JPEG without a frame header)")
        if pos + 2 > n:
            raise _Truncated
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise ImageError("not a readable image (corrupt JPEG segment)")
        if marker in _SOF:
            if pos + 7 > n:
                raise _Truncated
            height, width = struct.unpack_from(">HH", data, pos + 3)
            return width, height
        pos += length


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24:
        raise _Truncated
    if data[12:16] != b"IHDR":
        raise ImageError("not a readable image (PNG without IHDR)")
    return struct.unpack_from(">II", data, 16)


def _bmp_size(data: bytes) -> tuple[int, int]:
    # As OpenCV reads it: a 12-byte (OS/2) header holds 16-bit sizes, one of 36 bytes or more 32-bit signed ones
    # (a negative height means top-down rows).
    if len(data) < 26:
        raise _Truncated
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:
        return struct.unpack_from("<HH", data, 18)
    if header >= 36:
        width, height = struct.unpack_from("<ii", data, 18)
        return width, abs(height)
    raise ImageError("not a readable image (unsupported BMP header)")


# TIFF field types that may hold a size, as (struct code, bytes); libtiff accepts any integer type for one.
_TIFF_INT = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 6: ("b", 1), 8: ("h", 2), 9: ("i", 4), 16: ("Q", 8), 17: ("q", 8)}


def _tiff_size(data: bytes) -> tuple[int, int]:
    # The first directory (the page OpenCV decodes). A size tag given twice counts with its largest value, so
    # whichever one the decoder believes is within what was checked.
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"\x2b\x00", b"\x00\x2b")
    if len(data) < (16 if big else 8):
        raise _Truncated
    if big:
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        count_fmt, entry_size, inline = "Q", 20, 8
    else:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        count_fmt, entry_size, inline = "H", 12, 4
    count_size = struct.calcsize(count_fmt)
    if offset + count_size > len(data):
        raise _Truncated
    (count,) = struct.unpack_from(order + count_fmt, data, offset)
    if offset + count_size + count * entry_size > len(data):
        raise _Truncated
    sizes: dict[int, int] = {}
    for i in range(count):
        entry = offset + count_size + i * entry_size
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        if tag not in (256, 257):  # ImageWidth, ImageLength
            continue
        if kind not in _TIFF_INT:
            raise ImageError("not a readable image (corrupt TIFF size field)")
        code, size = _TIFF_INT[kind]
        value_at = entry + 4 + (8 if big else 4)
        if size > inline:
            raise ImageError("not a readable image (corrupt TIFF size field)")
        (value,) = struct.unpack_from(order + code, data, value_at)
        sizes[tag] = max(sizes.get(tag, value), value)
    if 256 not in sizes or 257 not in sizes:
        raise ImageError("not a readable image (TIFF without an image size)")
    return sizes[256], sizes[257]


def _size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, or ImageError / _Truncated. Recognises formats by their first bytes, as
    OpenCV picks its decoder: only these four reach it."""
    if not data:
        raise ImageError("not a readable image (empty file)")
    if data[:3] == b"\xff\xd8\xff":
        width, height = _jpeg_size(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        width, height = _png_size(data)
    elif data[:2] == b"BM":
        width, height = _bmp_size(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        width, height = _tiff_size(data)
    elif len(data) < 8:
        raise _Truncated
    else:
        raise ImageError("not a readable image (not a JPEG, PNG, BMP or TIFF file)")
    if width <= 0 or height <= 0:
        raise ImageError(f"not a readable image (header declares {width}x{height} pixels)")
    return width, height


def image_size(data: bytes, name: str | Path = "<bytes>") -> tuple[int, int]:
    """(width, height) an image's header declares, without decoding it. ImageError when the bytes are not a JPEG,
    PNG, BMP or TIFF with a readable header."""
    try:
        return _size(data if isinstance(data, bytes) else bytes(data))
    except _Truncated:
        raise ImageError("not a readable image (file ends inside its header)", name) from None
    except ImageError as exc:
        raise ImageError(exc.problem, name) from None


def check_pixels(width: int, height: int, name: str | Path, limit: int | None = None) -> None:
    """ImageTooLargeError when width x height is over the pixel limit (see `pixel_limit`)."""
    limit = pixel_limit(limit)
    if width * height > limit:
        raise ImageTooLargeError(
            f"image declares {width}x{height} pixels ({width * height:,}), over the limit of {limit:,} "
            f"(raise it with --max-pixels or {MAX_PIXELS_ENV})",
            name,
        )


def _check_bytes(size: int, name: str | Path, limit: int) -> None:
    if size > max_bytes(limit):
        raise ImageTooLargeError(
            f"file is {size:,} bytes, more than an image within the limit of {limit:,} pixels can take "
            f"(raise it with --max-pixels or {MAX_PIXELS_ENV})",
            name,
        )


# JPEG decoding at 1/2 or 1/4 scale (libjpeg's DCT scaling: it skips most of the inverse transform, so it is
# faster than a full decode followed by a resize); largest factor first.
_REDUCED = ((4, cv2.IMREAD_REDUCED_GRAYSCALE_4), (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))


def reduction(width: int, height: int, at_least: tuple[int, int] | None) -> int:
    """The largest JPEG decoding scale-down (4, 2, else 1) that keeps an image of width x height at least
    `at_least` (H, W) in both sides; 1 when `at_least` is None."""
    if at_least is None:
        return 1
    min_h, min_w = at_least
    for factor, _flag in _REDUCED:
        if -(-height // factor) >= min_h and -(-width // factor) >= min_w:
            return factor
    return 1


def decode_gray(data: bytes, name: str | Path = "<bytes>", *, max_pixels: int | None = None,
                at_least: tuple[int, int] | None = None) -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W). ImageError when they are not a readable image, ImageTooLargeError
    when the header declares more pixels than the limit (checked before decoding).

    `at_least` (H, W): the caller resizes the image down to about this size anyway, so a JPEG at least 2 or 4
    times larger in both sides is decoded at 1/2 or 1/4 scale (sides rounded up), never below `at_least`."""
    limit = pixel_limit(max_pixels)
    _check_bytes(len(data), name, limit)
    width, height = image_size(data, name)
    check_pixels(width, height, name, limit)
    buf = np.frombuffer(data, dtype=np.uint8)
    flag = cv2.IMREAD_GRAYSCALE
    if data[:3] == b"\xff\xd8\xff":  # other formats would be decoded whole and resized: no gain
        flag = dict(_REDUCED).get(reduction(width, height, at_least), flag)
    try:
        image = cv2.imdecode(buf, flag)
    except cv2.error as exc:
        detail = (exc.err or str(exc)).strip().splitlines()
        raise ImageError(f"not a readable image (OpenCV: {detail[0] if detail else 'decode failed'})", name) from None
    if image is None:
        raise ImageError("not a readable image (corrupt or unsupported format)", name)
    return image


def read_size(path: str | Path, *, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file from its header (usually in its first 4 KiB), without decoding it.

    ImageError when it is not a readable image, ImageTooLargeError when it is over the pixel limit."""
    path = Path(path)
    limit = pixel_limit(max_pixels)
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
            try:
                width, height = _size(head)
            except _Truncated:
                # The header goes on past the first block (large metadata): read the rest, within the byte bound.
                rest = fh.read(max_bytes(limit) + 1 - len(head))
                width, height = image_size(head + rest, path)
            except ImageError as exc:
                raise ImageError(exc.problem, path) from None
    except OSError as exc:
        raise ImageError(f"cannot read file ({exc.strerror or exc})", path) from None
    check_pixels(width, height, path, limit)
    return width, height


def read_gray(path: str | Path, *, max_pixels: int | None = None, at_least: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as uint8 grayscale (H, W). The Severstal JPEGs are 3-channel but grey. `at_least`: see
    `decode_gray` (a reduced-scale decode for a caller that shrinks the image anyway).

    ImageError when it cannot be read or decoded; ImageTooLargeError, before reading it whole, when the file or
    the size its header declares is over the limit (see `pixel_limit`)."""
    path = Path(path)
    limit = pixel_limit(max_pixels)
    try:
        _check_bytes(path.stat().st_size, path, limit)
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read file ({exc.strerror or exc})", path) from None
    return decode_gray(data, path, max_pixels=limit, at_least=at_least)


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
