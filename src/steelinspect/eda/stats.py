"""Dataset statistics for the EDA report: counts, defect areas, co-occurrence, where defects fall, brightness.

Defect areas are true pixel fractions in [0, 100] (% of the image's 256x1600 pixels), computed from RLE run
lengths without decoding a mask. A single-class image's area is its class's run lengths summed. For All_data and
Class_multi an image's area is the *union* of its classes' runs (interval merge): in valid data classes never
overlap (`steelinspect check` enforces it), so the union equals the sum of the class areas, and if they did
overlap the union still keeps the area a true fraction. Groups follow the capstone's Figure 12: All_data (every
defect image), Class_1..Class_4 (images with that single class), Class_multi (two or more classes).

Memory stays flat as the dataset grows:
- where defects fall: every run (start, length) of every mask is added to a per-class difference array over the
  flat 256x1600 image, and one cumulative sum at the end gives, exactly, how many masks cover each pixel. No mask
  is ever decoded, and the accumulators are a fixed 4 x 409,601 int32 whatever the dataset's size;
- brightness: images are decoded in a thread pool (OpenCV releases the GIL), each reduced at once to a 256-bin
  histogram, its mean and its black-band width, on a seeded sample of `EdaConfig.sample` images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import decoding_pool, read_gray
from steelinspect.data.layout import data_dir
from steelinspect.data.master import AREA_COLUMNS, RLE_COLUMNS, build_master, image_ids
from steelinspect.errors import ConfigError, ImageError

PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
HEATMAP_SHAPE = (64, 400)  # a quarter of the strip's resolution per side: enough to see where, small to keep
# Out-of-strip black band: looked at on the real sample, band columns average 1-9 grey levels, the darkest real
# steel ~35. A band is at least BAND_MIN_COLUMNS edge columns whose mean is under BAND_LEVEL.
BAND_LEVEL = 20
BAND_MIN_COLUMNS = 8
AREA_GROUPS = ("All_data", *(f"Class_{c}" for c in CLASS_IDS), "Class_multi")

Progress = Callable[[], None]


@dataclass
class EdaConfig:
    """Options of `steelinspect eda` / `write_report`."""

    sample: int = 2000  # images decoded for brightness and the black band (seeded); 0 = all
    seed: int = 0  # fixes the brightness sample and the gallery picks
    workers: int = 4  # threads decoding images
    gallery_per_class: int = 3  # K examples per class and of multi-class images

    def validate(self) -> None:
        if self.sample < 0:
            raise ConfigError(f"sample must be 0 (all images) or positive, got {self.sample}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.gallery_per_class < 0:
            raise ConfigError(f"gallery examples per class must be 0 or more, got {self.gallery_per_class}")


@dataclass
class EdaStats:
    """Everything the report shows. `to_json()` is what stats.json holds (keys documented in the README)."""

    images: int
    defect_images: int
    clean_images: int
    masks: int
    masks_per_class: dict[str, int]
    images_by_class_count: dict[str, int]
    label_combinations: dict[str, int]  # "3 4" -> images carrying exactly classes 3 and 4; "" = clean
    area_pct: dict[str, dict[str, float] | None]
    co_occurrence: list[list[int]]
    class_area_pct: dict[str, list[float]] = field(repr=False)  # every mask's area, per class (histograms)
    heatmaps: dict[str, np.ndarray] = field(repr=False)  # share of the class's masks covering each point
    brightness_hist: np.ndarray = field(repr=False)  # 256-bin pixel histogram over the sampled images
    image_means: list[float] = field(repr=False)  # mean grey level of each sampled image
    band_widths: list[int] = field(repr=False)  # black-band width (columns) of each sampled image with a band
    brightness_sample: int = 0  # images the brightness statistics come from (sampled and readable)
    unreadable: list[str] = field(default_factory=list)

    @property
    def black_band_images(self) -> int:
        return len(self.band_widths)

    @property
    def black_band_share(self) -> float | None:
        return self.black_band_images / self.brightness_sample if self.brightness_sample else None

    def to_json(self) -> dict:
        return {
            "images": self.images,
            "defect_images": self.defect_images,
            "clean_images": self.clean_images,
            "masks": self.masks,
            "masks_per_class": self.masks_per_class,
            "images_by_class_count": self.images_by_class_count,
            "label_combinations": self.label_combinations,
            "area_pct": self.area_pct,
            "co_occurrence": self.co_occurrence,
            "brightness": {
                "sampled_images": self.brightness_sample,
                "mean": float(np.mean(self.image_means)) if self.image_means else None,
                "black_band_images": self.black_band_images,
                "black_band_share": self.black_band_share,
                "unreadable": self.unreadable,
            },
        }


def describe(values: Iterable[float]) -> dict[str, float] | None:
    """mean, median, std (population, ddof=0), max, min; None for an empty group."""
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    if values.size == 0:
        return None
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
        "max": float(values.max()),
        "min": float(values.min()),
    }


def union_pixels(runs: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """Pixels covered by the union of several masks' runs ((starts, lengths) pairs), by interval merge."""
    starts = np.concatenate([s for s, _ in runs])
    if starts.size == 0:
        return 0
    ends = np.concatenate([s + n for s, n in runs])
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    # A merged interval begins where a run starts past everything before it reaches.
    begins = np.flatnonzero(np.concatenate(([True], starts[1:] > reach[:-1])))
    last = np.append(begins[1:], len(starts)) - 1
    return int((reach[last] - starts[begins]).sum())


@dataclass
class MaskScan:
    """What one streaming pass over the masks gives: per-image defect area and per-class coverage counts."""

    image_area_pct: np.ndarray  # (images,) union area in % (0 for clean images)
    coverage: dict[str, np.ndarray]  # class -> (256, 1600) int32: masks of that class covering each pixel


def scan_masks(master: pd.DataFrame, on_image: Progress | None = None) -> MaskScan:
    """One pass over the master table's RLE strings (see the module docstring: no mask is decoded)."""
    diff = {c: np.zeros(PIXELS + 1, dtype=np.int32) for c in CLASS_IDS}
    area = np.zeros(len(master), dtype=np.float64)
    columns = [master[c].tolist() for c in RLE_COLUMNS]
    for i, texts in enumerate(zip(*columns)):
        runs = []
        for class_id, text in zip(CLASS_IDS, texts):
            if text:
                starts, lengths = rle.parse(text)
                # Within a mask runs neither overlap nor repeat a start or an end, so plain fancy-index
                # updates are exact (no np.add.at needed).
                diff[class_id][starts] += 1
                diff[class_id][starts + lengths] -= 1
                runs.append((starts, lengths))
        if len(runs) == 1:
            area[i] = runs[0][1].sum()
        elif runs:
            area[i] = union_pixels(runs)
        if on_image:
            on_image()
    coverage = {
        str(c): np.cumsum(d[:-1], dtype=np.int32).reshape(IMAGE_SHAPE[1], IMAGE_SHAPE[0]).T  # column-major
        for c, d in diff.items()
    }
    return MaskScan(image_area_pct=area / PIXELS * 100, coverage=coverage)


def area_groups(master: pd.DataFrame, image_area_pct: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image defect area % for All_data, Class_1..4 (single-class images) and Class_multi."""
    n = master.Defect_no.to_numpy()
    groups = {"All_data": image_area_pct[n >= 1]}
    for c in CLASS_IDS:
        groups[f"Class_{c}"] = image_area_pct[(n == 1) & (master[f"Area_{c}"].to_numpy() > 0)]
    groups["Class_multi"] = image_area_pct[n >= 2]
    return groups


def co_occurrence(master: pd.DataFrame) -> np.ndarray:
    """(4, 4): images carrying both class i and class j; the diagonal counts images with class i."""
    present = (master[AREA_COLUMNS].to_numpy() > 0).astype(np.int64)
    return present.T @ present


def heatmap(coverage: np.ndarray, masks: int) -> np.ndarray:
    """Coverage counts (256, 1600) -> share of masks covering each point, averaged down to HEATMAP_SHAPE."""
    share = coverage.astype(np.float32) / max(masks, 1)
    return cv2.resize(share, HEATMAP_SHAPE[::-1], interpolation=cv2.INTER_AREA)


def band_width(gray: np.ndarray) -> int:
    """Width in columns of the out-of-strip black band at the left or right edge (0 when there is none).

    The band is the run of edge columns whose mean grey level stays under BAND_LEVEL; narrower than
    BAND_MIN_COLUMNS counts as no band (a dark edge line, not missing strip).
    """
    dark = gray.mean(axis=0) < BAND_LEVEL
    widths = []
    for side in (dark, dark[::-1]):
        widths.append(len(side) if side.all() else int(np.argmin(side)))
    width = max(widths)
    return width if width >= BAND_MIN_COLUMNS else 0


def has_black_band(gray: np.ndarray) -> bool:
    return band_width(gray) > 0


@dataclass
class Brightness:
    hist: np.ndarray
    means: list[float]
    band_widths: list[int]
    unreadable: list[str]


def _bounded_map(fn, items: list, workers: int) -> Iterator:
    """pool.map with at most 2 x workers items in flight, in order: memory stays flat for any number of items."""
    with decoding_pool(workers) as pool:
        pending = []
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def brightness(paths: list[Path], workers: int, on_image: Progress | None = None) -> Brightness:
    """Grey-level histogram, per-image means and black-band widths of `paths`; unreadable files are listed."""
    out = Brightness(np.zeros(256, dtype=np.int64), [], [], [])

    def one(path: Path):
        try:
            gray = read_gray(path)
        except ImageError as exc:
            return str(exc)
        # Reduce in the worker thread so only a few decoded images ever exist at once.
        return np.bincount(gray.ravel(), minlength=256), float(gray.mean()), band_width(gray)

    for result in _bounded_map(one, paths, max(1, workers)):
        if isinstance(result, str):
            out.unreadable.append(result)
        else:
            counts, mean, width = result
            out.hist += counts
            out.means.append(mean)
            if width:
                out.band_widths.append(width)
        if on_image:
            on_image()
    return out


def sample_ids(ids: list[str], sample: int, seed: int) -> list[str]:
    """A seeded sample of `sample` ids (all when sample is 0 or at least len(ids)), in sorted order."""
    if sample <= 0 or sample >= len(ids):
        return list(ids)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(np.array(ids, dtype=object), size=sample, replace=False).tolist())


def progress_total(root: str | Path, config: EdaConfig | None = None) -> int:
    """Progress steps `compute_stats` reports: every image once (mask scan) plus every sampled image."""
    config = config or EdaConfig()
    n = len(image_ids(data_dir(root).images))
    return n + (n if config.sample <= 0 else min(config.sample, n))


def compute_stats(
    root: str | Path,
    config: EdaConfig | None = None,
    master: pd.DataFrame | None = None,
    on_step: Progress | None = None,
) -> EdaStats:
    """All statistics of a data directory. Bad labels raise the data layer's DataError (file, row, problem).

    `master` may be passed when the caller already built it (build_master(root)); `on_step` is called once per
    image scanned and once per image decoded (`progress_total` steps in all).
    """
    config = config or EdaConfig()
    config.validate()
    layout = data_dir(root)
    master = build_master(root) if master is None else master
    scan = scan_masks(master, on_step)
    groups = area_groups(master, scan.image_area_pct)
    per_image = master.Defect_no.value_counts()
    top = int(per_image.index.max()) if len(per_image) else 0
    combos = master.ClassIds.map(lambda ids: " ".join(map(str, ids))).value_counts()
    masks_per_class = {str(c): int((master[f"Area_{c}"] > 0).sum()) for c in CLASS_IDS}
    sampled = sample_ids(master.ImageId.tolist(), config.sample, config.seed)
    bright = brightness([layout.image(i) for i in sampled], config.workers, on_step)
    return EdaStats(
        images=len(master),
        defect_images=int(master.Defect.sum()),
        clean_images=int((~master.Defect).sum()),
        masks=int(master.Defect_no.sum()),
        masks_per_class=masks_per_class,
        images_by_class_count={str(k): int(per_image.get(k, 0)) for k in range(max(top, 1) + 1)},
        label_combinations={str(k): int(v) for k, v in combos.items()},
        area_pct={name: describe(values) for name, values in groups.items()},
        co_occurrence=co_occurrence(master).tolist(),
        class_area_pct={
            str(c): (master.loc[master[f"Area_{c}"] > 0, f"Area_{c}"].to_numpy(np.float64) / PIXELS * 100).tolist()
            for c in CLASS_IDS
        },
        heatmaps={c: heatmap(cov, masks_per_class[c]) for c, cov in scan.coverage.items()},
        brightness_hist=bright.hist,
        image_means=bright.means,
        band_widths=bright.band_widths,
        brightness_sample=len(bright.means),
        unreadable=bright.unreadable,
    )
