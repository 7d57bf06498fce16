"""The synthetic Severstal-format generator: the embedded default dataset for the demo, tests and benchmarks.

It writes the Kaggle layout (OUT_DIR/train.csv + OUT_DIR/train_images/*.jpg, 1600x256) and is deterministic
for a seed: image i depends only on (seed, i), never on the number of workers.

What it imitates (from the real sample and the real image-level labels):
- steel texture: vertical rolling-direction grain, blotches, a smooth illumination change across the strip, a
  wide spread of overall brightness, and on some images a black out-of-strip band at the left or right edge;
- class sets sampled from the real label-combination frequencies (47% clean, class 3 dominant, ~6% of defect
  images with two or more classes);
- defect signatures: class 1 clusters of small pits, class 2 sparse thin vertical traces, class 3 concentrated
  vertical (some horizontal) scratches of widely varying extent, class 4 large rounded rough regions;
- labels as coarse polygons around the drawn defect (like the real annotations), classes never overlapping.
Contrast is kept modest so that a classifier has to learn something.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE, IMAGES_DIR, LABELS_FILE
from steelinspect.data.labels import write_labels
from steelinspect.errors import ConfigError

# Image counts per label combination in the 12,568 real Kaggle training images (image_level_labels.csv).
COMBINATION_COUNTS: dict[tuple[int, ...], int] = {
    (): 5902,
    (3,): 4759,
    (1,): 769,
    (4,): 516,
    (3, 4): 284,
    (2,): 195,
    (1, 3): 91,
    (1, 2): 35,
    (2, 3): 14,
    (1, 2, 3): 2,
    (2, 4): 1,
}
_COMBOS = list(COMBINATION_COUNTS)
_COMBO_P = np.array(list(COMBINATION_COUNTS.values()), dtype=float) / sum(COMBINATION_COUNTS.values())

BLACK_BAND_PROBABILITY = 0.25
LABEL_FORMATS = ("new", "original")


@dataclass
class SynthConfig:
    images: int = 200
    seed: int = 0
    label_format: str = "new"
    workers: int | None = None  # None: all cores
    jpeg_quality: int = 92

    def validate(self) -> None:
        if not isinstance(self.images, int) or self.images < 1:
            raise ConfigError(f"--images must be a whole number >= 1, got {self.images!r}")
        if self.label_format not in LABEL_FORMATS:
            raise ConfigError(f"--format must be 'new' or 'original', got {self.label_format!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")


def image_id(seed: int, index: int) -> str:
    """Deterministic 9-hex-digit name like the real ones (e.g. 0a1b2c3d4.jpg)."""
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).hexdigest()[:9] + ".jpg"


# --- texture -------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled with cubic interpolation."""
    coarse = rng.uniform(-1, 1, cells).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def steel_texture(rng: np.random.Generator, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Float32 grey steel surface: brightness, illumination ramp, vertical grain, blotches, fine noise."""
    height, width = shape
    base = rng.choice([rng.uniform(55, 95), rng.uniform(90, 135), rng.uniform(130, 200)], p=[0.3, 0.5, 0.2])
    illumination = 1.0 + 0.18 * _smooth_noise(rng, (1, width), (1, rng.integers(3, 7)))
    grain = rng.normal(0, 1, (1, width)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), sigmaX=rng.uniform(0.6, 2.0)) * rng.uniform(3, 7)
    streaks = _smooth_noise(rng, shape, (2, rng.integers(60, 200))) * rng.uniform(2, 6)
    blotches = _smooth_noise(rng, shape, (rng.integers(3, 7), rng.integers(12, 30))) * rng.uniform(4, 12)
    fine = rng.normal(0, rng.uniform(3, 6), shape).astype(np.float32)
    return base * illumination + grain + streaks + blotches + fine


def black_band(rng: np.random.Generator, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[str, int] | None:
    """Side ('left'|'right') and width of the out-of-strip band, or None."""
    if rng.random() >= BLACK_BAND_PROBABILITY:
        return None
    return ("left" if rng.random() < 0.35 else "right"), int(rng.integers(60, 900))


def _strip_columns(band: tuple[str, int] | None, width: int) -> tuple[int, int]:
    """Column range [lo, hi) that is steel (not the black band)."""
    if band is None:
        return 0, width
    side, band_width = band
    return (band_width, width) if side == "left" else (0, width - band_width)


# --- defects: each returns the coarse label polygon mask; drawing changes `image` in place -----------------


def _coarse_polygon(mask: np.ndarray, rng: np.random.Generator, margin: int) -> np.ndarray:
    """Annotator-style label: the outline of the dilated defect simplified to a polygon with few vertices."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    grown = cv2.dilate(mask.astype(np.uint8), kernel)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    label = np.zeros_like(grown)
    for contour in contours:
        epsilon = rng.uniform(0.01, 0.03) * cv2.arcLength(contour, True)
        cv2.fillPoly(label, [cv2.approxPolyDP(contour, epsilon, True)], 1)
    return label.astype(bool)


def _sign(rng: np.random.Generator, p_dark: float = 0.7) -> float:
    return -1.0 if rng.random() < p_dark else 1.0


def draw_pits(image: np.ndarray, rng: np.random.Generator, cols: tuple[int, int]) -> np.ndarray:
    """Class 1: one to three clusters of small pits (about 3% of the image in all)."""
    height = image.shape[0]
    drawn = np.zeros(image.shape, np.uint8)
    for _ in range(rng.choice([1, 1, 2])):
        cw, ch = int(rng.integers(70, 200)), int(rng.integers(60, 170))
        cx = int(rng.integers(cols[0] + cw // 2, max(cols[0] + cw // 2 + 1, cols[1] - cw // 2)))
        cy = int(rng.integers(ch // 2, height - ch // 2))
        for _ in range(int(rng.integers(10, 30))):
            x = int(np.clip(cx + rng.normal(0, cw / 4), cols[0], cols[1] - 1))
            y = int(np.clip(cy + rng.normal(0, ch / 4), 0, height - 1))
            axes = (int(rng.integers(1, 5)), int(rng.integers(1, 6)))
            cv2.ellipse(drawn, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    pits = drawn.astype(bool)
    image[pits] += _sign(rng, 0.6) * rng.uniform(18, 40) + rng.normal(0, 6, int(pits.sum()))
    return _coarse_polygon(pits, rng, margin=int(rng.integers(10, 20)))


def draw_traces(image: np.ndarray, rng: np.random.Generator, cols: tuple[int, int]) -> np.ndarray:
    """Class 2: one to three sparse thin vertical traces (about 2.5% of the image)."""
    height = image.shape[0]
    drawn = np.zeros(image.shape, np.uint8)
    for _ in range(rng.choice([1, 2, 2, 3])):
        x = int(rng.integers(cols[0] + 10, max(cols[0] + 11, cols[1] - 10)))
        length = int(rng.integers(height // 3, height + 1))
        y0 = int(rng.integers(0, height - length + 1))
        points = [(x + int(rng.normal(0, 2)), y) for y in range(y0, y0 + length, 16)] + [(x, y0 + length - 1)]
        cv2.polylines(drawn, [np.array(points, np.int32)], False, 1, thickness=int(rng.integers(1, 4)))
    traces = drawn.astype(bool)
    image[traces] += _sign(rng) * rng.uniform(14, 30)
    return _coarse_polygon(traces, rng, margin=int(rng.integers(8, 15)))


def draw_scratches(image: np.ndarray, rng: np.random.Generator, cols: tuple[int, int]) -> np.ndarray:
    """Class 3: a concentrated group of scratches, mostly vertical, with widely varying extent
    (log-normal region width: median about 6% of the image, a few very large)."""
    height = image.shape[0]
    horizontal = rng.random() < 0.2
    drawn = np.zeros(image.shape, np.uint8)
    span = cols[1] - cols[0]
    if horizontal:
        rw = int(np.clip(rng.lognormal(np.log(400), 0.6), 80, span))
        rh = int(rng.integers(20, 90))
    else:
        rw = int(np.clip(rng.lognormal(np.log(170), 0.9), 24, span))
        rh = int(rng.integers(height // 2, height + 1))
    x0 = int(rng.integers(cols[0], max(cols[0] + 1, cols[1] - rw)))
    y0 = int(rng.integers(0, height - rh + 1))
    for _ in range(int(rng.integers(2, 8 + rw // 40))):
        if horizontal:
            y = int(rng.integers(y0, y0 + rh))
            a, b = (x0 + int(rng.integers(0, rw // 3 + 1)), y), (x0 + rw - int(rng.integers(0, rw // 3 + 1)), y + int(rng.normal(0, 4)))
        else:
            x = int(rng.integers(x0, x0 + rw))
            a, b = (x, y0 + int(rng.integers(0, rh // 3 + 1))), (x + int(rng.normal(0, 6)), y0 + rh - int(rng.integers(0, rh // 3 + 1)))
        cv2.line(drawn, a, b, 1, thickness=int(rng.integers(1, 4)))
    scratches = drawn.astype(bool)
    image[scratches] += _sign(rng, 0.55) * rng.uniform(14, 32) + rng.normal(0, 5, int(scratches.sum()))
    return _coarse_polygon(scratches, rng, margin=int(rng.integers(14, 26)))


def draw_region(image: np.ndarray, rng: np.random.Generator, cols: tuple[int, int]) -> np.ndarray:
    """Class 4: a large rounded rough region (about 12-17% of the image)."""
    height, width = image.shape
    area = rng.uniform(0.09, 0.2) * height * width
    ry = rng.uniform(0.3, 0.55) * height
    rx = min(area / (np.pi * ry), (cols[1] - cols[0]) / 2 - 2)
    cx = rng.uniform(cols[0] + rx, cols[1] - rx)
    cy = rng.uniform(ry * 0.6, height - ry * 0.6)
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    wobble = 1 + 0.18 * np.convolve(rng.normal(0, 1, 46), np.ones(7) / 7, mode="valid")[:40]
    points = np.stack([cx + rx * wobble * np.cos(angles), cy + ry * wobble * np.sin(angles)], axis=1)
    drawn = np.zeros(image.shape, np.uint8)
    cv2.fillPoly(drawn, [points.astype(np.int32)], 1)
    region = drawn.astype(bool)
    rough = rng.normal(0, rng.uniform(8, 14), image.shape).astype(np.float32)
    rough = cv2.GaussianBlur(rough, (0, 0), 1.2) * 2.2
    soft = cv2.GaussianBlur(drawn.astype(np.float32), (0, 0), 6)
    image += soft * (_sign(rng, 0.75) * rng.uniform(10, 24)) + region * rough
    return _coarse_polygon(region, rng, margin=int(rng.integers(2, 8)))


DRAWERS: dict[int, Callable[[np.ndarray, np.random.Generator, tuple[int, int]], np.ndarray]] = {
    1: draw_pits,
    2: draw_traces,
    3: draw_scratches,
    4: draw_region,
}


# --- one image ---------------------------------------------------------------------------------------------


def sample_classes(rng: np.random.Generator) -> tuple[int, ...]:
    return _COMBOS[int(rng.choice(len(_COMBOS), p=_COMBO_P))]


def render(seed: int, index: int, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Image `index` of dataset `seed`: uint8 (H, W) and {class_id: bool label mask} (never overlapping)."""
    rng = np.random.default_rng([seed, index])
    image = steel_texture(rng, shape)
    band = black_band(rng, shape)
    cols = _strip_columns(band, shape[1])
    taken = np.zeros(shape, bool)
    masks: dict[int, np.ndarray] = {}
    for class_id in sample_classes(rng):
        mask = DRAWERS[class_id](image, rng, cols) & ~taken
        mask[:, : cols[0]] = False
        mask[:, cols[1] :] = False
        if mask.any():
            masks[class_id] = mask
            taken |= mask
    if band is not None:
        side, band_width = band
        dark = rng.normal(2, 1.5, (shape[0], band_width)).astype(np.float32)
        if side == "left":
            image[:, :band_width] = dark
        else:
            image[:, shape[1] - band_width :] = dark
    return np.clip(image, 0, 255).astype(np.uint8), masks


def _write_one(args: tuple[int, int, Path, int]) -> tuple[str, dict[int, str]]:
    seed, index, folder, quality = args
    image, masks = render(seed, index)
    name = image_id(seed, index)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 always encodes a uint8 image
        raise RuntimeError(f"JPEG encoding failed for {name}")
    (folder / name).write_bytes(data.tobytes())
    return name, {c: rle.encode(m) for c, m in masks.items()}


def generate(
    out_dir: str | Path,
    images: int = 200,
    seed: int = 0,
    label_format: str = "new",
    workers: int | None = None,
    on_image: Callable[[], None] | None = None,
    config: SynthConfig | None = None,
) -> Path:
    """Write a synthetic dataset to `out_dir` (which must not already hold a dataset) and return it.

    The dataset is built in a sibling temporary folder and renamed into place at the end, so an interrupted
    run leaves nothing half-written. `on_image` is called once per finished image (for progress bars).
    """
    config = config or SynthConfig(images=images, seed=seed, label_format=label_format, workers=workers)
    config.validate()
    out = Path(out_dir)
    if (out / LABELS_FILE).exists() or (out / IMAGES_DIR).exists():
        raise ConfigError(f"{out} already holds a dataset ({LABELS_FILE} or {IMAGES_DIR}/); choose an empty folder", out)
    if out.exists() and not out.is_dir():
        raise ConfigError("exists and is not a folder", out)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".synth-{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    folder = staging / IMAGES_DIR
    folder.mkdir(parents=True)
    try:
        jobs = [(config.seed, i, folder, config.jpeg_quality) for i in range(config.images)]
        n_workers = min(config.workers or os.cpu_count() or 1, max(1, config.images // 16))
        results = []
        if n_workers <= 1:
            for job in jobs:
                results.append(_write_one(job))
                if on_image:
                    on_image()
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                for result in pool.map(_write_one, jobs, chunksize=8):
                    results.append(result)
                    if on_image:
                        on_image()
        names = [name for name, _ in results]
        if len(set(names)) != len(names):  # pragma: no cover - 36 bits of hash; guards the invariant
            raise RuntimeError("synthetic image names collided; use another seed")
        table = pd.DataFrame(
            [(name, c, text) for name, rles in results for c, text in sorted(rles.items())],
            columns=["ImageId", "ClassId", "EncodedPixels"],
        )
        write_labels(table, staging / LABELS_FILE, config.label_format, image_ids=names)
        os.replace(folder, out / IMAGES_DIR)
        os.replace(staging / LABELS_FILE, out / LABELS_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out

