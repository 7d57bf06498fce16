"""Drawing one synthetic steel image: the strip texture, the out-of-strip band and the four defect signatures.

Everything works in float32 grey levels and is multiplicative where the real images are: the camera sees
reflectance times illumination, so a scratch on a bright strip has more contrast in grey levels than the same
scratch on a dark one. Each defect drawer changes `image` in place and returns the label: a coarse polygon
around what it drew (real annotators drew a few clicks around the defect, not its pixels).

Tuned against the 30 real images in the Severstal sample: grey-level spread (10th/50th/90th percentile of the
per-image mean about 65/105/165), fine high-frequency texture, vertical streaks and stains along the rolling
direction, wide illumination changes, and a black band on about a third of the images (mostly at the right).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from steelinspect.constants import IMAGE_SHAPE

BLACK_BAND_PROBABILITY = 0.3
# How visible every defect is (scales its darkening and relief) and how strong the stains are: fixed, so an image
# depends only on (seed, i).
DEFECT_STRENGTH = 1.0
STAIN_STRENGTH = 1.0
BAND_ON_LEFT_PROBABILITY = 0.25

Columns = tuple[int, int]  # [lo, hi) columns that are steel, not the black band


# --- texture -------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid upsampled with cubic interpolation."""
    coarse = rng.uniform(-1, 1, cells).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative light field: slow changes across the strip, a soft top-bottom gradient, and on some
    images a bright lobe (the lamp's reflection) that washes part of the strip out."""
    height, width = shape
    light = 1.0 + rng.uniform(0.15, 0.45) * _smooth_noise(rng, shape, (2, int(rng.integers(2, 6))))
    light *= 1.0 + rng.uniform(-0.2, 0.2) * np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    if rng.random() < 0.5:
        x = np.arange(width, dtype=np.float32)
        centre, spread = rng.uniform(0, width), rng.uniform(150, 600)
        light += rng.uniform(0.25, 0.8) * np.exp(-(((x - centre) / spread) ** 2))[None, :]
    return light


def steel_texture(rng: np.random.Generator, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Float32 grey steel surface: brightness x illumination x (grain, streaks, stains, cross-grain, speckle)."""
    height, width = shape
    base = float(np.clip(rng.lognormal(np.log(100), 0.33), 45, 200))
    # Fine texture: pixel speckle plus short wisps along the rolling direction (the same noise, smeared).
    noise = rng.random(shape, np.float32)  # uniform: 3x faster to draw than normal, alike once blurred
    noise -= 0.5
    noise *= np.sqrt(12.0)  # unit variance
    wisps = cv2.GaussianBlur(noise, (0, 0), sigmaX=0.6, sigmaY=rng.uniform(1.5, 4))
    surface = noise
    surface *= rng.uniform(0.03, 0.07)
    surface += wisps * rng.uniform(0.1, 0.22)
    # Rolling-direction grain: per-column lines plus vertically elongated streaks.
    grain = cv2.GaussianBlur(rng.standard_normal((1, width), np.float32), (0, 0), rng.uniform(0.6, 2.0))
    surface += 1.0 + grain * rng.uniform(0.02, 0.05)
    streaks = _smooth_noise(rng, shape, (int(rng.integers(2, 5)), int(rng.integers(80, 300))))
    surface += streaks * rng.uniform(0.04, 0.1)
    # Stains: dark marks stretched along the rolling direction, gathered in a few zones of the strip. Clean
    # strips carry them too, so a classifier cannot call every dark mark a defect.
    stains = _smooth_noise(rng, shape, (int(rng.integers(3, 7)), int(rng.integers(60, 200))))
    stains += 0.5 * _smooth_noise(rng, shape, (int(rng.integers(8, 16)), int(rng.integers(150, 400))))
    zones = np.clip(_smooth_noise(rng, (1, width), (1, int(rng.integers(3, 9)))) + rng.uniform(-0.3, 0.5), 0, 1)
    stains -= rng.uniform(0.3, 0.9)
    np.maximum(stains, 0, out=stains)
    stains *= zones * (rng.uniform(0.2, 1.0) * STAIN_STRENGTH)
    surface -= stains
    # Cross-grain: faint fine lines across the strip that fade in and out along it (seen on some real strips).
    if rng.random() < 0.35:
        rows = cv2.GaussianBlur(rng.standard_normal((height, 1), np.float32), (0, 0), 0.8)
        envelope = np.clip(_smooth_noise(rng, (1, width), (1, int(rng.integers(3, 8)))) + 0.3, 0, 1)
        surface += rows * (envelope * rng.uniform(0.02, 0.05))
    light = _illumination(rng, shape)
    light *= base
    surface *= light
    return surface


def black_band(rng: np.random.Generator, width: int = IMAGE_SHAPE[1]) -> tuple[str, int] | None:
    """Side ('left'|'right') and width of the out-of-strip band, or None."""
    if rng.random() >= BLACK_BAND_PROBABILITY:
        return None
    side = "left" if rng.random() < BAND_ON_LEFT_PROBABILITY else "right"
    return side, int(rng.integers(width // 50, width * 2 // 5))


def strip_columns(band: tuple[str, int] | None, width: int) -> Columns:
    if band is None:
        return 0, width
    side, band_width = band
    return (band_width, width) if side == "left" else (0, width - band_width)


def paint_band(image: np.ndarray, rng: np.random.Generator, band: tuple[str, int]) -> None:
    """Near-black beyond the strip edge, with a few pixels of soft fall-off at the edge like the real band."""
    height, width = image.shape
    side, band_width = band
    columns = np.arange(width, dtype=np.float32)
    inside = columns - (band_width - 1) if side == "left" else (width - band_width) - columns  # <= 0 in the band
    steel = np.clip(inside / rng.integers(2, 8), 0, 1)  # weight of the steel: 0 in the band, ramps up at the edge
    dark = steel < 1
    weight = steel[dark]
    black = rng.normal(3, 1.5, (height, int(dark.sum()))).astype(np.float32)
    image[:, dark] = image[:, dark] * weight + black * (1 - weight)


# --- shared defect helpers -----------------------------------------------------------------------------------


def _box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Bounding box of the mask's non-zero pixels, padded and clipped to the image."""
    x, y, w, h = cv2.boundingRect(mask)
    height, width = mask.shape
    return slice(max(0, y - pad), min(height, y + h + pad)), slice(max(0, x - pad), min(width, x + w + pad))


def coarse_polygon(mask: np.ndarray, rng: np.random.Generator, margin: int) -> np.ndarray:
    """Annotator-style label: the outline of the dilated defect simplified to a polygon with few vertices."""
    label = np.zeros(mask.shape, np.uint8)
    if not mask.any():
        return label.astype(bool)
    rows, cols = _box(mask, 2 * margin + 2)  # work on the defect's neighbourhood only: much faster
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    grown = cv2.dilate(mask[rows, cols], kernel)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        # Few vertices, but never so few that a thin defect's outline collapses to a line.
        thickness = min(cv2.minAreaRect(contour)[1])
        epsilon = min(rng.uniform(0.01, 0.03) * cv2.arcLength(contour, True), 0.2 * thickness)
        polygons.append(cv2.approxPolyDP(contour, epsilon, True))
    cv2.fillPoly(label[rows, cols], polygons, 1)
    return label.astype(bool)


def shade(image: np.ndarray, depth: np.ndarray, rows: slice, cols: slice, darken: float, relief: float) -> None:
    """Apply a defect given its depth map (>= 0 inside, 0 outside) on a box of the image: darken where deep
    and light the slopes from the upper left, which gives pits and rough patches their 3-D look."""
    d = depth[rows, cols] * DEFECT_STRENGTH
    slope = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3) + cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3)
    image[rows, cols] *= np.clip(1.0 - darken * d - relief * slope, 0.05, 3.0)


def _sign(rng: np.random.Generator, p_dark: float) -> float:
    return 1.0 if rng.random() < p_dark else -1.0  # +1 darkens, -1 brightens (see `shade`)


# --- the four defect classes ---------------------------------------------------------------------------------


def draw_pits(image: np.ndarray, rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Class 1: one or two clusters of small pits (about 3% of the image in all)."""
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
    rows, box_cols = _box(drawn, 4)
    depth = np.zeros(image.shape, np.float32)
    depth[rows, box_cols] = cv2.GaussianBlur(drawn[rows, box_cols].astype(np.float32), (0, 0), 0.8)
    shade(image, depth, rows, box_cols, _sign(rng, 0.6) * rng.uniform(0.35, 0.7), rng.uniform(0.03, 0.1))
    return coarse_polygon(drawn, rng, margin=int(rng.integers(11, 21)))


def draw_traces(image: np.ndarray, rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Class 2: one to three sparse thin vertical traces (about 2.5% of the image)."""
    height = image.shape[0]
    drawn = np.zeros(image.shape, np.uint8)
    for _ in range(rng.choice([1, 2, 2, 3])):
        x = int(rng.integers(cols[0] + 10, max(cols[0] + 11, cols[1] - 10)))
        length = int(rng.integers(height // 3, height + 1))
        y0 = int(rng.integers(0, height - length + 1))
        points = [(x + int(rng.normal(0, 2)), y) for y in range(y0, y0 + length, 16)] + [(x, y0 + length - 1)]
        cv2.polylines(drawn, [np.array(points, np.int32)], False, 1, thickness=int(rng.integers(1, 4)))
    rows, box_cols = _box(drawn, 4)
    depth = np.zeros(image.shape, np.float32)
    fade = 0.6 + 0.4 * _smooth_noise(rng, (rows.stop - rows.start, 1), (4, 1))  # intensity varies along it
    depth[rows, box_cols] = cv2.GaussianBlur(drawn[rows, box_cols].astype(np.float32), (0, 0), 0.7) * fade
    shade(image, depth, rows, box_cols, _sign(rng, 0.7) * rng.uniform(0.4, 0.65), rng.uniform(0.0, 0.12))
    return coarse_polygon(drawn, rng, margin=int(rng.integers(9, 16)))


def draw_scratches(image: np.ndarray, rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Class 3: a concentrated group of scratches, mostly vertical, with widely varying extent
    (log-normal region width: median about 6% of the image, a few very large)."""
    height = image.shape[0]
    horizontal = rng.random() < 0.2
    drawn = np.zeros(image.shape, np.uint8)
    span = cols[1] - cols[0]
    if horizontal:
        rw, rh = int(np.clip(rng.lognormal(np.log(400), 0.6), 80, span)), int(rng.integers(20, 90))
    else:
        rw, rh = int(np.clip(rng.lognormal(np.log(190), 0.9), 24, span)), int(rng.integers(height // 2, height + 1))
    x0 = int(rng.integers(cols[0], max(cols[0] + 1, cols[1] - rw)))
    y0 = int(rng.integers(0, height - rh + 1))
    for _ in range(int(rng.integers(2, 8 + rw // 40))):
        if horizontal:
            y = int(rng.integers(y0, y0 + rh))
            a = (x0 + int(rng.integers(0, rw // 3 + 1)), y)
            b = (x0 + rw - int(rng.integers(0, rw // 3 + 1)), y + int(rng.normal(0, 4)))
        else:
            x = int(rng.integers(x0, x0 + rw))
            a = (x, y0 + int(rng.integers(0, rh // 3 + 1)))
            b = (x + int(rng.normal(0, 6)), y0 + rh - int(rng.integers(0, rh // 3 + 1)))
        cv2.line(drawn, a, b, 1, thickness=int(rng.integers(1, 4)))
    rows, box_cols = _box(drawn, 4)
    box = drawn[rows, box_cols].astype(np.float32)
    # Each scratch is deeper in places and fades out, like a real gouge.
    along = (box.shape[0], 1) if not horizontal else (1, box.shape[1])
    fade = 0.65 + 0.35 * _smooth_noise(rng, along, (5, 1) if not horizontal else (1, 5))
    depth = np.zeros(image.shape, np.float32)
    depth[rows, box_cols] = cv2.GaussianBlur(box, (0, 0), 0.7) * fade
    shade(image, depth, rows, box_cols, _sign(rng, 0.6) * rng.uniform(0.4, 0.65), rng.uniform(0.0, 0.15))
    return coarse_polygon(drawn, rng, margin=int(rng.integers(14, 26)))


def draw_region(image: np.ndarray, rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Class 4: a large rounded rough region (about 12-17% of the image) with an irregular outline."""
    height, width = image.shape
    area = rng.uniform(0.09, 0.2) * height * width
    ry = rng.uniform(0.3, 0.55) * height
    rx = min(area / (np.pi * ry), (cols[1] - cols[0]) / 2 - 2)
    cx = rng.uniform(cols[0] + rx, cols[1] - rx)
    cy = rng.uniform(ry * 0.6, height - ry * 0.6)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for k in range(2, 8):  # a few harmonics: rounded overall, lumpy and sometimes dented in detail
        radius += rng.normal(0, 0.22 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    radius = np.clip(radius, 0.4, None)
    points = np.stack([cx + rx * radius * np.cos(angles), cy + ry * radius * np.sin(angles)], axis=1)
    drawn = np.zeros(image.shape, np.uint8)
    cv2.fillPoly(drawn, [points.astype(np.int32)], 1)
    rows, box_cols = _box(drawn, 12)
    region = drawn[rows, box_cols].astype(np.float32)
    # Depth: a soft-edged, patchy plateau with rough relief stretched along the rolling direction.
    sigma = rng.uniform(1.0, 2.5)
    rough = rng.standard_normal(region.shape, np.float32)
    rough = cv2.GaussianBlur(rough, (0, 0), sigmaX=sigma, sigmaY=sigma * rng.uniform(1, 3))
    rough *= 1.0 / (rough.std() + 1e-6)
    patchy = 0.75 + 0.25 * _smooth_noise(rng, region.shape, (4, 6))
    depth = np.zeros(image.shape, np.float32)
    depth[rows, box_cols] = cv2.GaussianBlur(region, (0, 0), 5) * (patchy + rng.uniform(0.15, 0.35) * rough)
    shade(image, depth, rows, box_cols, _sign(rng, 0.75) * rng.uniform(0.2, 0.38), rng.uniform(0.1, 0.22))
    return coarse_polygon(drawn, rng, margin=int(rng.integers(2, 8)))


DRAWERS: dict[int, Callable[[np.ndarray, np.random.Generator, Columns], np.ndarray]] = {
    1: draw_pits,
    2: draw_traces,
    3: draw_scratches,
    4: draw_region,
}
