"""Dataset statistics for the EDA report: counts, defect areas, co-occurrence, where defects fall, brightness.

Areas are true pixel fractions in [0, 100] (% of the 256x1600 image), computed from RLE run lengths without
decoding. An image's area is the sum of its class areas, which equals the union because classes never overlap
in valid data (`steelinspect check` enforces it). Groups follow the capstone's Figure 12: All_data (every defect
image), Class_1..Class_4 (images with that single class), Class_multi (two or more classes).

Memory stays flat as the dataset grows: masks are decoded one at a time into fixed-size per-class heatmaps, and
images are decoded (streaming, in threads) only for the brightness statistics, on a seeded sample.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import read_gray
from steelinspect.data.layout import data_dir
from steelinspect.data.master import AREA_COLUMNS, RLE_COLUMNS, build_master
from steelinspect.errors import ImageError

PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
HEATMAP_SHAPE = (64, 400)  # a quarter of the strip's resolution: enough to see where, small enough to keep
BAND_LEVEL = 12  # mean grey level under which an edge column band counts as out-of-strip black
BAND_COLUMNS = 16


@dataclass
class EdaConfig:
    sample: int = 2000  # images decoded for brightness (seeded); 0 = all
    seed: int = 0
    workers: int = 4
    gallery_per_class: int = 3


@dataclass
class EdaStats:
    """Everything the report shows. `to_json()` is what stats.json holds (documented in the README)."""

    images: int
    defect_images: int
    clean_images: int
    masks: int
    masks_per_class: dict[str, int]
    images_by_class_count: dict[str, int]
    area_pct: dict[str, dict[str, float] | None]
    co_occurrence: list[list[int]]
    class_area_pct: dict[str, list[float]] = field(repr=False)  # per mask, for histograms
    heatmaps: dict[str, np.ndarray] = field(repr=False)  # fraction of masks covering each (reduced) pixel
    brightness_hist: np.ndarray = field(repr=False)  # 256-bin pixel histogram over the sampled images
    image_means: list[float] = field(repr=False)
    brightness_sample: int = 0
    black_band_images: int = 0
    unreadable: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        sampled = max(self.brightness_sample, 1)
        return {
            "images": self.images,
            "defect_images": self.defect_images,
            "clean_images": self.clean_images,
            "masks": self.masks,
            "masks_per_class": self.masks_per_class,
            "images_by_class_count": self.images_by_class_count,
            "area_pct": self.area_pct,
            "co_occurrence": self.co_occurrence,
            "brightness": {
                "sampled_images": self.brightness_sample,
                "mean": float(np.mean(self.image_means)) if self.image_means else None,
                "black_band_share": self.black_band_images / sampled if self.brightness_sample else None,
                "unreadable": self.unreadable,
            },
        }


def describe(values: np.ndarray) -> dict[str, float] | None:
    """mean, median, std (population), max, min; None for an empty group."""
    if len(values) == 0:
        return None
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
        "max": float(values.max()),
        "min": float(values.min()),
    }


def area_groups(master: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-image defect area % for All_data, Class_1..4 (single-class images) and Class_multi."""
    pct = master[AREA_COLUMNS].sum(axis=1).to_numpy(dtype=np.float64) / PIXELS * 100
    n = master.Defect_no.to_numpy()
    groups = {"All_data": pct[n >= 1]}
    for c in CLASS_IDS:
        single = (n == 1) & (master[f"Area_{c}"].to_numpy() > 0)
        groups[f"Class_{c}"] = pct[single]
    groups["Class_multi"] = pct[n >= 2]
    return groups


def co_occurrence(master: pd.DataFrame) -> np.ndarray:
    """(4, 4): images carrying both class i and class j; the diagonal counts images with class i."""
    present = (master[AREA_COLUMNS].to_numpy() > 0).astype(np.int64)
    return present.T @ present


def location_heatmaps(master: pd.DataFrame, on_mask: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """Per class, the share of that class's masks covering each pixel (at HEATMAP_SHAPE)."""
    out = {}
    for c, column in zip(CLASS_IDS, RLE_COLUMNS):
        total = np.zeros(HEATMAP_SHAPE, dtype=np.float64)
        texts = [t for t in master[column] if t]
        for text in texts:
            mask = rle.decode(text).astype(np.float32)
            total += cv2.resize(mask, HEATMAP_SHAPE[::-1], interpolation=cv2.INTER_AREA)
            if on_mask:
                on_mask()
        out[str(c)] = total / max(len(texts), 1)
    return out


def has_black_band(gray: np.ndarray) -> bool:
    """An out-of-strip black band at the left or right edge of the image."""
    left = gray[:, :BAND_COLUMNS].mean()
    right = gray[:, -BAND_COLUMNS:].mean()
    return bool(min(left, right) < BAND_LEVEL)


def brightness(
    paths: list[Path], workers: int, on_image: Callable[[], None] | None = None
) -> tuple[np.ndarray, list[float], int, list[str]]:
    """(256-bin pixel histogram, per-image means, images with a black band, unreadable files)."""
    hist = np.zeros(256, dtype=np.int64)
    means: list[float] = []
    bands = 0
    unreadable: list[str] = []

    def one(path: Path):
        try:
            gray = read_gray(path)
        except ImageError as exc:
            return str(exc)
        return np.bincount(gray.ravel(), minlength=256), float(gray.mean()), has_black_band(gray)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(one, paths):  # map keeps a bounded window of decoded images in flight
            if isinstance(result, str):
                unreadable.append(result)
            else:
                counts, mean, band = result
                hist += counts
                means.append(mean)
                bands += band
            if on_image:
                on_image()
    return hist, means, bands, unreadable


def sample_ids(ids: list[str], sample: int, seed: int) -> list[str]:
    if sample <= 0 or sample >= len(ids):
        return list(ids)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=sample, replace=False).tolist())


def compute_stats(
    root: str | Path,
    config: EdaConfig | None = None,
    master: pd.DataFrame | None = None,
    on_step: Callable[[], None] | None = None,
) -> EdaStats:
    """All statistics of a data directory. Bad labels raise the data layer's DataError."""
    config = config or EdaConfig()
    layout = data_dir(root)
    master = build_master(root) if master is None else master
    groups = area_groups(master)
    n_classes = master.Defect_no.value_counts().sort_index()
    class_area = {
        str(c): (master.loc[master[f"Area_{c}"] > 0, f"Area_{c}"].to_numpy(dtype=np.float64) / PIXELS * 100).tolist()
        for c in CLASS_IDS
    }
    heatmaps = location_heatmaps(master, on_step)
    sampled = sample_ids(master.ImageId.tolist(), config.sample, config.seed)
    hist, means, bands, unreadable = brightness([layout.image(i) for i in sampled], config.workers, on_step)
    return EdaStats(
        images=len(master),
        defect_images=int(master.Defect.sum()),
        clean_images=int((~master.Defect).sum()),
        masks=int(master.Defect_no.sum()),
        masks_per_class={str(c): int((master[f"Area_{c}"] > 0).sum()) for c in CLASS_IDS},
        images_by_class_count={str(k): int(n_classes.get(k, 0)) for k in range(int(n_classes.index.max()) + 1)},
        area_pct={name: describe(values) for name, values in groups.items()},
        co_occurrence=co_occurrence(master).tolist(),
        class_area_pct=class_area,
        heatmaps=heatmaps,
        brightness_hist=hist,
        image_means=means,
        brightness_sample=len(sampled) - len(unreadable),
        black_band_images=bands,
        unreadable=unreadable,
    )


def steps(master: pd.DataFrame, config: EdaConfig) -> int:
    """How many progress steps compute_stats reports (masks decoded + images sampled)."""
    n = len(master)
    return int(master.Defect_no.sum()) + (n if config.sample <= 0 else min(config.sample, n))
