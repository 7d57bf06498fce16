"""Drawing one synthetic steel image: the strip texture, the out-of-strip band and the four defect signatures.

Everything works in float32 grey levels and is multiplicative where the real images are: the camera sees
reflectance times illumination, so a scratch on a bright strip has more contrast in grey levels than the same
scratch on a dark one. Each defect drawer changes `image` in place and returns the label: a coarse polygon
around what it drew (real annotators drew a few clicks around the defect, not its pixels).

Tuned against the 30 real images in the Severstal sample with bench/realism.py (steelinspect.data.realism):
brightness level and spread, the light falling from the bottom rows to the top ones and from the middle of
the camera's width to its edges, an about isotropic fine texture with fine lines across the strip (real
plates carry as much gradient energy across the rolling direction as along it), sparse streaks and stains
along it, sharp-edged marks that are not defects (blotches, single thin lines, bright specks), and a black band
on about a third of the images (mostly at the right).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from steelinspect.constants import IMAGE_SHAPE

BLACK_BAND_PROBABILITY = 0.3
BAND_ON_LEFT_PROBABILITY = 0.25

Columns = tuple[int, int]  # [lo, hi) columns that are steel, not the black band


# --- texture -------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid upsampled with cubic interpolation."""
    coarse = rng.uniform(-1, 1, cells).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


LOW = (64, 800)  # the smooth fields (light, streaks, stains) are built at this size and upsampled once


def _envelope(rng: np.random.Generator, length: int, cells: int, low: float, high: float) -> np.ndarray:
    """A slow 1-D weight in [0, 1] over `length` px: smooth noise over `cells` cells raised by an offset drawn in
    [low, high) and clipped, so a mark fades out along parts of its line and is at full strength along others."""
    return np.clip(_smooth_noise(rng, (1, length), (1, cells))[0] + rng.uniform(low, high), 0, 1)


def _up(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative light field (at any size; it is smooth), as measured on the real images: the strip
    brightens from top to bottom (the lamp's angle; top rows at about 0.5-0.85 of the mean, bottom rows at
    1.1-1.45), is brightest near the middle of the camera's width and falls to about 0.7 at its edges, with
    slow patches on top and, on some images, a lamp reflection that washes part of the strip out."""
    height, width = shape
    t = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    if rng.random() < 0.9:
        down = np.exp(rng.uniform(0.05, 0.6) * (t - rng.uniform(0, 0.15) * t * t))
    else:  # a few strips peak or dip in the middle rows instead
        down = 1.0 + rng.uniform(-0.25, 0.15) * (1 - 2 * t * t)
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :] - rng.uniform(-0.3, 0.3)
    across = 1.0 - rng.uniform(0.2, 0.55) * x * x
    light = down * across
    light *= 1.0 + rng.uniform(0.05, 0.25) * _smooth_noise(rng, shape, (int(rng.integers(2, 4)), int(rng.integers(3, 9))))
    if rng.random() < 0.5:  # lamp reflection: a bright lobe, sometimes strong enough to wash the steel out
        cx, cy = rng.uniform(0, 1), rng.uniform(0.3, 1.3)
        sx, sy = rng.uniform(100, 500) / IMAGE_SHAPE[1], rng.uniform(40, 160) / IMAGE_SHAPE[0]
        xs = np.linspace(0, 1, width, dtype=np.float32)[None, :]
        ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        light += rng.uniform(0.2, 1.2) * np.exp(-(((xs - cx) / sx) ** 2)) * np.exp(-(((ys - cy) / sy) ** 2))
    return light


def _cross_grain(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Fine lines across the strip, gently curved and fading in and out (roll marks seen on most real
    strips): a 1-D line pattern sampled along rows that bend with a slow offset across the width."""
    height, width = shape
    period = 2 * height
    profile = cv2.GaussianBlur(rng.standard_normal((period, 1), np.float32), (0, 0), rng.uniform(0.7, 1.5))[:, 0]
    profile /= profile.std() + 1e-6
    bend = _smooth_noise(rng, (1, width), (1, int(rng.integers(3, 9))))[0] * rng.uniform(3, 30)
    bend += np.linspace(0, rng.uniform(-40, 40), width, dtype=np.float32)
    rows = (np.arange(height, dtype=np.int32)[:, None] + bend.astype(np.int32)[None, :]) % period
    lines = profile[rows]
    # Fades in and out: a separable envelope (an outer product is far cheaper than a full-size noise field).
    along = _envelope(rng, width, int(rng.integers(3, 9)), -0.1, 0.6)
    down = _envelope(rng, height, 2, 0.3, 1.0)
    lines *= down[:, None] * along[None, :]
    return lines


def steel_texture(rng: np.random.Generator, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Float32 grey steel surface: brightness x illumination x (mottle, cross-grain, streaks, stains).

    The fine texture is about isotropic, with fine lines across the strip on most images: the real plates
    carry about as much gradient energy across the rolling direction as along it (real median h/v energy
    ratio 0.78); their streaks and stains are the sparse, larger marks on top."""
    height, width = shape
    low = (min(LOW[0], height), min(LOW[1], width))
    base = float(np.clip(rng.lognormal(np.log(118), 0.33), 45, 210))
    noise = rng.random(shape, np.float32)  # uniform: 3x faster to draw than normal, alike once blurred
    noise -= 0.5
    mottle = cv2.GaussianBlur(noise, (0, 0), sigmaX=rng.uniform(0.8, 1.5), sigmaY=rng.uniform(0.5, 0.9))
    # sqrt(12): unit variance for the uniform noise; + 1.0: the surface's mean reflectance.
    surface = cv2.addWeighted(noise, np.sqrt(12.0) * rng.uniform(0.02, 0.05), mottle, np.sqrt(12.0) * rng.uniform(0.1, 0.22), 1.0)
    if rng.random() < 0.75:
        surface += _cross_grain(rng, shape) * rng.uniform(0.02, 0.07)
    # Rolling-direction grain and streaks: present, but weaker than the texture (see the docstring).
    grain = cv2.GaussianBlur(rng.standard_normal((1, width), np.float32), (0, 0), rng.uniform(0.8, 2.5))
    grain *= rng.uniform(0.005, 0.02)
    # Roll marks and reflections that are not defects: a few lines the full height of the strip, a few pixels
    # wide, mostly bright (seen on clean parts of real plates). Added to the grain: no extra full-size pass.
    if rng.random() < 0.2:
        x = np.arange(width, dtype=np.float32)
        for _ in range(int(rng.integers(1, 4))):
            centre, half = rng.uniform(0, width), rng.uniform(1, 8)
            strength = rng.uniform(0.08, 0.3) * (1.0 if rng.random() < 0.9 else -0.5)
            grain += strength * np.exp(-(((x - centre) / half) ** 2))[None, :]
    surface += grain
    smooth = _smooth_noise(rng, low, (int(rng.integers(3, 8)), int(rng.integers(80, 300))))
    smooth *= rng.uniform(0.02, 0.06)
    # Stains: dark marks stretched along the rolling direction, gathered in a few zones of the strip. Clean
    # strips carry them too, so a classifier cannot call every dark mark a defect.
    stains = _smooth_noise(rng, low, (int(rng.integers(4, 9)), int(rng.integers(60, 200))))
    stains += 0.5 * _smooth_noise(rng, low, (int(rng.integers(8, 20)), int(rng.integers(150, 400))))
    zones = _envelope(rng, low[1], int(rng.integers(3, 9)), -0.3, 0.5)
    stains -= rng.uniform(0.3, 0.9)
    np.maximum(stains, 0, out=stains)
    stains *= zones * rng.uniform(0.4, 1.5)
    smooth -= stains
    light = _illumination(rng, low)
    light *= base
    # (surface + smooth) * light, with the smooth fields upsampled: surface * L + (smooth * light) upsampled.
    smooth *= light
    surface *= _up(light, shape)
    surface += _up(smooth, shape)
    surface *= _crisp_marks(rng, shape)
    return surface


def _crisp_marks(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative field of sharp-edged marks that are not defects, as on the clean parts of real plates:
    smooth dark blotches stretched along the rolling direction, single thin lines along it (fainter than a class 2
    crack, and alone, where class 3 draws several inside an abraded band) and sparse bright specks.
    Without them the only crisp marks on synthetic steel are the defects, and a classifier trained on it flags
    most real clean steel, which is full of them. Each is kept unlike the defects it could be taken for:
    blotches have no rough inside or bright rim (class 4), specks are bright and spread (class 1 pits are dark
    and clustered)."""
    height, width = shape
    field = np.ones(shape, np.float32)
    if rng.random() < 0.5:  # blotches: a thresholded medium-scale field, edges kept sharp, smooth inside
        half = (height // 2, width // 2)  # built at half size: the edges stay about a pixel wide once upsampled
        blot = _smooth_noise(rng, half, (int(rng.integers(4, 9)), int(rng.integers(60, 200))))
        zones = _envelope(rng, half[1], int(rng.integers(3, 9)), -0.2, 0.5)
        blot *= zones[None, :]
        blot -= rng.uniform(0.5, 0.85)
        blot *= rng.uniform(8, 30)
        np.clip(blot, 0, 1, out=blot)
        blot *= rng.uniform(0.08, 0.3)
        field -= _up(blot, shape)
    if rng.random() < 0.5:  # single thin lines along the strip, some the full height
        x = np.arange(width, dtype=np.float32)
        profile = np.zeros(width, np.float32)
        for _ in range(int(rng.integers(1, 6))):
            centre, half = rng.uniform(0, width), rng.uniform(0.6, 2.0)
            profile += rng.uniform(0.06, 0.25) * (1.0 if rng.random() < 0.6 else -1.0) * np.exp(-(((x - centre) / half) ** 2))
        along = _envelope(rng, height, int(rng.integers(2, 5)), 0.2, 1.0)
        near = np.flatnonzero(np.abs(profile) > 1e-3)  # only the columns the lines touch
        field[:, near] -= along[:, None] * profile[None, near]
    if rng.random() < 0.35:  # specks: sparse bright specular points over a wide zone
        zone = _smooth_noise(rng, (height // 8, width // 8), (int(rng.integers(2, 4)), int(rng.integers(3, 8))))
        count = int(rng.uniform(0.0005, 0.003) * height * width)
        ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
        keep = zone[ys // 8, xs // 8] > rng.uniform(0.0, 0.5)
        ys, xs = ys[keep], xs[keep]
        amp = np.float32(rng.uniform(0.3, 0.8))  # the centre pixel; its 4 neighbours get 40% of it
        np.add.at(field, (ys, xs), amp)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            np.add.at(field, (np.clip(ys + dy, 0, height - 1), np.clip(xs + dx, 0, width - 1)), 0.4 * amp)
    return field


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
    if rng.random() < 0.5:  # the strip's edge often catches the light: a bright rim beside the band
        near = (inside > 0) & (inside < 40)
        rim = np.exp(-inside[near] / rng.uniform(2, 8))
        image[:, near] *= 1.0 + rng.uniform(0.1, 0.4) * rim[None, :]
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
    d = depth[rows, cols]
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
    shade(image, depth, rows, box_cols, _sign(rng, 0.8) * rng.uniform(0.5, 0.85), rng.uniform(0.03, 0.1))
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
        cv2.polylines(drawn, [np.array(points, np.int32)], False, 1, thickness=int(rng.integers(2, 5)))
    rows, box_cols = _box(drawn, 4)
    depth = np.zeros(image.shape, np.float32)
    fade = 0.6 + 0.4 * _smooth_noise(rng, (rows.stop - rows.start, 1), (4, 1))  # intensity varies along it
    depth[rows, box_cols] = cv2.GaussianBlur(drawn[rows, box_cols].astype(np.float32), (0, 0), 0.7) * fade
    shade(image, depth, rows, box_cols, _sign(rng, 0.85) * rng.uniform(0.55, 0.8), rng.uniform(0.0, 0.12))
    return coarse_polygon(drawn, rng, margin=int(rng.integers(9, 16)))


def _band_polygon(rng: np.random.Generator, x0: int, x1: int, y0: int, y1: int, margin: int) -> np.ndarray:
    """An annotator's few clicks around a band along the strip: a quadrilateral a few pixels outside it,
    sometimes tapering, sometimes with a step at one end."""
    jitter = lambda: int(rng.integers(0, margin + 1))  # noqa: E731
    top = [(x0 - margin + jitter(), y0), (x1 + margin - jitter(), y0)]
    bottom = [(x1 + margin - jitter(), y1), (x0 - margin + jitter(), y1)]
    if rng.random() < 0.3:  # a step: the band narrows for its last part
        y_step = int(y0 + rng.uniform(0.5, 0.9) * (y1 - y0))
        cut = int(rng.uniform(0.3, 0.6) * (x1 - x0))
        bottom = [(x1 + margin, y_step), (x1 - cut, y_step), (x1 - cut, y1), (x0 - margin, y1)]
    return np.array(top + bottom, np.int32)


def draw_scratches(image: np.ndarray, rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Class 3: scratches and abraded bands along the rolling direction, as in the real masks: a few (median
    3) separate narrow bands, half of them the full height of the image, each a streaky darker (sometimes
    brighter) band with one to three crisp scratch lines in it, each labelled by its own coarse polygon; now
    and then a field of short marks labelled by one polygon around all of them."""
    height, width = image.shape
    label = np.zeros(image.shape, np.uint8)
    span = cols[1] - cols[0]
    if rng.random() < 0.15:  # a scratch field: many short marks, one coarse label over the lot
        fw, fh = int(min(rng.uniform(150, 500), span)), int(rng.uniform(0.4, 1.0) * height)
        fx, fy = int(rng.integers(cols[0], max(cols[0] + 1, cols[1] - fw))), int(rng.integers(0, height - fh + 1))
        drawn = np.zeros(image.shape, np.uint8)
        for _ in range(int(rng.integers(15, 60))):
            x, y = int(rng.integers(fx, fx + fw)), int(rng.integers(fy, fy + fh))
            cv2.line(drawn, (x, y), (x + int(rng.normal(0, 2)), y + int(rng.integers(8, 40))), 1, int(rng.integers(1, 4)))
        rows, box_cols = _box(drawn, 4)
        depth = np.zeros(image.shape, np.float32)
        depth[rows, box_cols] = cv2.GaussianBlur(drawn[rows, box_cols].astype(np.float32), (0, 0), 0.8)
        shade(image, depth, rows, box_cols, _sign(rng, 0.7) * rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.3))
        return coarse_polygon(drawn, rng, margin=int(rng.integers(12, 30)))
    region = int(np.clip(rng.lognormal(np.log(260), 0.8), 40, span))
    rx = int(rng.integers(cols[0], max(cols[0] + 1, cols[1] - region + 1)))
    marks = min(1 + int(rng.geometric(0.4)), 9)
    for _ in range(marks):
        w = int(np.clip(rng.lognormal(np.log(18), 0.6), 4, 100))
        full = rng.random() < 0.5
        length = height if full else int(rng.uniform(0.15, 0.9) * height)
        y0 = 0 if full else int(rng.integers(0, height - length + 1))
        x0 = int(rng.integers(rx, max(rx + 1, rx + region - w)))
        x1 = min(x0 + w, cols[1])
        if x1 - x0 < 3:
            continue
        box = (slice(y0, y0 + length), slice(x0, x1))
        bw = x1 - x0
        u = np.linspace(-1, 1, bw, dtype=np.float32)[None, :]
        across = np.clip(1.2 - u * u, 0, 1)  # the abrasion fades at the band's sides
        streaky = cv2.GaussianBlur(rng.standard_normal((1, bw), np.float32), (0, 0), 0.8)  # lines along it
        fade = 0.6 + 0.4 * _smooth_noise(rng, (length, 1), (int(rng.integers(3, 8)), 1))
        depth = across * (rng.uniform(0.1, 0.3) + rng.uniform(0.1, 0.25) * streaky) * fade
        for _ in range(int(rng.integers(2, 6))):  # crisp scratches inside the band
            c = int(rng.integers(0, bw))
            depth[:, c : c + int(rng.integers(1, 3))] += rng.uniform(0.2, 0.6) * fade
        sign = _sign(rng, 0.9)
        # The band's walls catch the light from one side (a gouge, not a stain): a bright/dark edge pair.
        relief = rng.uniform(0.03, 0.12) * cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
        image[box] *= np.clip(1.0 - sign * depth - relief, 0.05, 3.0)
        cv2.fillPoly(label, [_band_polygon(rng, x0, x1, y0, y0 + length - 1, int(rng.integers(2, 9)))], 1)
    label[:, : cols[0]] = 0
    label[:, cols[1] :] = 0
    return label.astype(bool)


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, shape: tuple[int, int]) -> np.ndarray:
    """An irregular blob: an ellipse whose radius carries a few random harmonics (lumpy, sometimes dented)."""
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radius = np.ones_like(angles)
    for k in range(2, 9):
        radius += rng.normal(0, 0.3 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    radius = np.clip(radius, 0.35, None)
    points = np.stack([cx + rx * radius * np.cos(angles), cy + ry * radius * np.sin(angles)], axis=1)
    drawn = np.zeros(shape, np.uint8)
    cv2.fillPoly(drawn, [points.astype(np.int32)], 1)
    return drawn


def draw_region(image: np.ndarray, rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Class 4: rolled-in scale / scabs: one to a few nearby raised, rough patches (in all about 2-16% of the
    image, median about 6%) with a dark, textured core, bright rims where the relief catches the light and a
    few specular spots; each labelled by a coarse polygon (near ones merge into one label, as annotators drew
    them)."""
    height, width = image.shape
    total = float(np.clip(rng.lognormal(np.log(0.06), 0.7), 0.008, 0.3)) * height * width
    parts = 1 if rng.random() < 0.5 else int(rng.integers(2, 5))
    drawn = np.zeros(image.shape, np.uint8)
    span = cols[1] - cols[0]
    cx0 = rng.uniform(cols[0], cols[1])
    cy0 = rng.uniform(0.2, 0.8) * height
    for part in range(parts):
        area = total * (0.6 if part == 0 else 0.4 / (parts - 1)) if parts > 1 else total
        ry = min(np.sqrt(area / np.pi) * rng.uniform(0.5, 1.3), 0.6 * height)
        rx = min(area / (np.pi * ry), span / 2 - 2)
        cx = float(np.clip(cx0 + rng.normal(0, 120) * (part > 0), cols[0] + rx * 0.5, cols[1] - rx * 0.5))
        cy = float(np.clip(cy0 + rng.normal(0, 50) * (part > 0), 0, height))
        drawn |= _blob(rng, cx, cy, rx, ry, image.shape)
    drawn[:, : cols[0]] = 0
    drawn[:, cols[1] :] = 0
    if not drawn.any():
        return drawn.astype(bool)
    rows, box_cols = _box(drawn, 12)
    region = drawn[rows, box_cols].astype(np.float32)
    # Depth: a plateau rising over a few pixels from the outline, with rough relief (a few lumps and folds).
    plateau = cv2.GaussianBlur(region, (0, 0), rng.uniform(2, 5))
    sigma = rng.uniform(3, 7)
    rough = cv2.GaussianBlur(rng.standard_normal(region.shape, np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma * rng.uniform(0.7, 2))
    rough *= 1.0 / (rough.std() + 1e-6)
    fine = cv2.GaussianBlur(rng.standard_normal(region.shape, np.float32), (0, 0), 1.0)
    fine *= 1.0 / (fine.std() + 1e-6)
    depth = np.zeros(image.shape, np.float32)
    depth[rows, box_cols] = plateau * (1.0 + rng.uniform(0.25, 0.6) * rough + rng.uniform(0.2, 0.5) * fine)
    shade(image, depth, rows, box_cols, _sign(rng, 0.8) * rng.uniform(0.05, 0.28), rng.uniform(0.03, 0.1))
    # The raised edge catches the light: a bright rim where the plateau rises (strongest half way up).
    rim = plateau * (1 - plateau) * 4
    image[rows, box_cols] *= 1.0 + rng.uniform(0.0, 0.4) * rim
    # Specular spots: where the relief is highest, a few pixels flare (the real scabs' bright glints).
    if rng.random() < 0.4:
        d = depth[rows, box_cols]
        glint = (d > np.percentile(d[region > 0], rng.uniform(95, 99.5))) & (region > 0)
        image[rows, box_cols][glint] *= rng.uniform(1.2, 1.8)
    return coarse_polygon(drawn, rng, margin=int(rng.integers(3, 12)))


DRAWERS: dict[int, Callable[[np.ndarray, np.random.Generator, Columns], np.ndarray]] = {
    1: draw_pits,
    2: draw_traces,
    3: draw_scratches,
    4: draw_region,
}
