"""How much a dataset looks like real Severstal plates: per-image and per-mask statistics, compared between
two datasets as distributions (Kolmogorov-Smirnov distance, medians), against the floor that the real data
sets itself (two random halves of the real set), plus a small real-vs-synthetic classifier's ROC AUC.

Statistics only: nothing here prints. bench/realism.py turns the comparison into a table.

Conventions: the image is uint8 grey (H, W) with the rolling direction vertical (down the image), as in the
Kaggle images. "h" gradients are differences between neighbouring columns (they see vertical streaks), "v"
gradients between neighbouring rows (they see horizontal lines). Statistics that describe the steel skip the
out-of-strip black band.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.data.images import list_images, read_gray
from steelinspect.data.labels import read_labels
from steelinspect.data.layout import data_dir

BAND_LEVEL = 25  # a column whose median grey level is below this is out-of-strip band, not steel
RING = 15  # pixels around a mask that count as its surroundings
LINE_ROWS = 64  # a thin line's darkness is measured on windows of this many rows (it fades along its length)
LINE_SIDE = 7  # columns either side of a line that count as the steel beside it

# name -> what it measures (the order is the table's order)
IMAGE_STATS: dict[str, str] = {
    "brightness_mean": "mean grey level of the steel",
    "brightness_std": "spread of grey levels within the steel",
    "highlights": "99th minus 50th percentile (reflections, bright rims)",
    "shadows": "50th minus 1st percentile (dark marks, stains, pits)",
    "grad_h": "RMS difference between neighbouring columns (sees vertical streaks)",
    "grad_v": "RMS difference between neighbouring rows (sees horizontal lines)",
    "grad_ratio_hv": "grad_h^2 / grad_v^2: streaking along vs across the strip",
    "fine_texture": "RMS of the image minus its blur at sigma 1 (pixel-scale texture), / mean",
    "mid_texture": "RMS of blur(2) minus blur(8) (marks a few pixels wide), / mean",
    "column_profile": "std of the column means / mean (streaks and light across the strip)",
    "row_profile": "std of the row means / mean (light along the strip)",
    "illumination": "std of blur(32) / mean (large-scale light and stains)",
    "dark_marks": "% of steel pixels 20+ grey levels below their neighbourhood (blur 8)",
    "bright_marks": "% of steel pixels 20+ grey levels above their neighbourhood (blur 8)",
    "band_fraction": "% of columns that are out-of-strip black band",
}

PATCH = 64  # side of the square patches of the patch-level classifier
PATCHES_PER_IMAGE = 8
# Statistics of one patch: the local look (texture, marks, gradients) without the image-wide light.
PATCH_STATS = ("mean", "std", "p99_p50", "p50_p1", "grad_h", "grad_v", "fine", "mid", "skew")

MASK_STATS: dict[str, str] = {
    "area": "% of the image",
    "components": "connected parts of the mask",
    "elongation": "log2(height / width) of the mask's largest part",
    "centre_x": "centroid column / width",
    "centre_y": "centroid row / height",
    "contrast_mean": "mean inside / mean of the ring around it, minus 1",
    "contrast_std": "std inside / std of the ring around it",
    "contrast_texture": "fine texture inside / that of the ring around it",
    "line_contrast": "darkest thin line along the strip inside the mask: 1 - its column mean / the median of the "
    f"{2 * LINE_SIDE + 1} columns around it, median over {LINE_ROWS}-row windows",
}


def steel_columns(image: np.ndarray) -> np.ndarray:
    """Bool per column: steel (True) or out-of-strip black band (False), with a few columns of the band's
    soft edge counted as band."""
    dark = np.median(image, axis=0) < BAND_LEVEL
    if dark.any():
        dark = cv2.dilate(dark.astype(np.uint8)[None, :], np.ones((1, 9), np.uint8))[0].astype(bool)
    return ~dark


def widest_run(columns: np.ndarray) -> tuple[int, int] | None:
    """(start, stop) of the widest run of True in a bool vector (the first of equal ones), None when it has none:
    the one contiguous strip of steel columns, with no seam where a band was cut out."""
    edges = np.flatnonzero(np.diff(np.r_[0, columns.astype(np.int8), 0]))
    starts, stops = edges[::2], edges[1::2]
    if not len(starts):
        return None
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64)))) if values.size else float("nan")


def image_stats(image: np.ndarray) -> dict[str, float]:
    """The IMAGE_STATS of one uint8 grey image (NaN for every steel statistic when it is all band)."""
    steel = steel_columns(image)
    band = 100.0 * (1 - steel.mean())
    if steel.sum() < 16:
        return {**{k: float("nan") for k in IMAGE_STATS}, "band_fraction": band}
    lo, hi = widest_run(steel)  # statistics of one contiguous strip
    strip = image[:, lo:hi].astype(np.float32)
    mean = float(strip.mean())
    scale = max(mean, 1.0)
    p1, p50, p99 = np.percentile(strip, [1, 50, 99])
    gh = np.diff(strip, axis=1)
    gv = np.diff(strip, axis=0)
    eh, ev = float(np.mean(np.square(gh))), float(np.mean(np.square(gv)))
    b1 = cv2.GaussianBlur(strip, (0, 0), 1)
    b2 = cv2.GaussianBlur(strip, (0, 0), 2)
    b8 = cv2.GaussianBlur(strip, (0, 0), 8)
    b32 = cv2.GaussianBlur(strip, (0, 0), 32)
    local = strip - b8
    return {
        "brightness_mean": mean,
        "brightness_std": float(strip.std()),
        "highlights": float(p99 - p50),
        "shadows": float(p50 - p1),
        "grad_h": float(np.sqrt(eh)),
        "grad_v": float(np.sqrt(ev)),
        "grad_ratio_hv": eh / max(ev, 1e-9),
        "fine_texture": _rms(strip - b1) / scale,
        "mid_texture": _rms(b2 - b8) / scale,
        "column_profile": float(strip.mean(axis=0).std()) / scale,
        "row_profile": float(strip.mean(axis=1).std()) / scale,
        "illumination": float(b32.std()) / scale,
        "dark_marks": 100.0 * float((local < -20).mean()),
        "bright_marks": 100.0 * float((local > 20).mean()),
        "band_fraction": band,
    }


def patch_stats(image: np.ndarray, seed: int, count: int = PATCHES_PER_IMAGE, size: int = PATCH) -> list[dict[str, float]]:
    """PATCH_STATS of `count` random size x size steel patches of the image (none when the strip is narrower
    than a patch); the positions depend only on `seed`."""
    run = widest_run(steel_columns(image))
    if run is None or image.shape[0] < size:
        return []
    lo, hi = run
    if hi - lo < size:
        return []
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        y, x = int(rng.integers(0, image.shape[0] - size + 1)), int(rng.integers(lo, hi - size + 1))
        p = image[y : y + size, x : x + size].astype(np.float32)
        mean = float(p.mean())
        scale = max(mean, 1.0)
        std = float(p.std())
        p1, p50, p99 = np.percentile(p, [1, 50, 99])
        rows.append(
            {
                "mean": mean,
                "std": std / scale,
                "p99_p50": float(p99 - p50) / scale,
                "p50_p1": float(p50 - p1) / scale,
                "grad_h": _rms(np.diff(p, axis=1)) / scale,
                "grad_v": _rms(np.diff(p, axis=0)) / scale,
                "fine": _rms(p - cv2.GaussianBlur(p, (0, 0), 1)) / scale,
                "mid": _rms(cv2.GaussianBlur(p, (0, 0), 2) - cv2.GaussianBlur(p, (0, 0), 6)) / scale,
                "skew": float(np.mean(((p - mean) / max(std, 1e-3)) ** 3)),
            }
        )
    return rows


def line_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """The darkest thin line along the strip inside `mask`: per window of LINE_ROWS rows, the column means
    over the rows the mask covers, each against the median of the columns around it; the largest within the
    mask's columns, as a share of the steel's level; the median over the windows (NaN without a window of 16
    mask rows). It tells a crack or scratch line (a few columns darker than their neighbours) from a broad
    stain or band, which darkens its neighbours too."""
    img = image.astype(np.float32)
    side = LINE_SIDE
    values = []
    for start in range(0, mask.shape[0], LINE_ROWS):
        window = mask[start : start + LINE_ROWS]
        rows = window.any(axis=1)
        if rows.sum() < 16:
            continue
        profile = img[start : start + LINE_ROWS][rows].mean(axis=0)
        padded = np.pad(profile, side, mode="edge")
        steel = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * side + 1), axis=1)
        contrast = 1.0 - profile / np.maximum(steel, 1.0)
        values.append(float(contrast[window.any(axis=0)].max()))
    return float(np.median(values)) if values else float("nan")


def mask_stats(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The MASK_STATS of one bool label mask on its uint8 grey image."""
    height, width = mask.shape
    m8 = mask.astype(np.uint8)
    count, labels, boxes, centroids = cv2.connectedComponentsWithStats(m8, connectivity=8)
    if count < 2:
        return {k: float("nan") for k in MASK_STATS}
    largest = 1 + int(np.argmax(boxes[1:, cv2.CC_STAT_AREA]))
    box_w, box_h = boxes[largest, cv2.CC_STAT_WIDTH], boxes[largest, cv2.CC_STAT_HEIGHT]
    ys, xs = np.nonzero(mask)
    steel = np.broadcast_to(steel_columns(image)[None, :], mask.shape)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING + 1, 2 * RING + 1))
    ring = (cv2.dilate(m8, kernel) > 0) & ~mask & steel
    inside = mask & steel
    img = image.astype(np.float32)
    fine = img - cv2.GaussianBlur(img, (0, 0), 1)
    stats = {
        "area": 100.0 * float(mask.mean()),
        "components": float(count - 1),
        "elongation": float(np.log2(box_h / box_w)),
        "centre_x": float(xs.mean() / width),
        "centre_y": float(ys.mean() / height),
        "contrast_mean": float("nan"),
        "contrast_std": float("nan"),
        "contrast_texture": float("nan"),
        "line_contrast": line_contrast(image, mask),
    }
    if inside.sum() >= 16 and ring.sum() >= 16:
        a, b = img[inside], img[ring]
        stats["contrast_mean"] = float(a.mean() / max(b.mean(), 1.0) - 1)
        stats["contrast_std"] = float(a.std() / max(b.std(), 0.5))
        stats["contrast_texture"] = _rms(fine[inside]) / max(_rms(fine[ring]), 0.1)
    return stats


@dataclass
class Stats:
    """Per-image and per-mask statistics of a set of images."""

    images: pd.DataFrame  # one row per image: ImageId, Classes (tuple), then IMAGE_STATS
    masks: pd.DataFrame  # one row per mask: ImageId, ClassId, then MASK_STATS
    patches: pd.DataFrame  # one row per random steel patch: ImageId, then PATCH_STATS


def collect(items: Iterable[tuple[str, np.ndarray, dict[int, np.ndarray]]]) -> Stats:
    """Stats of (image id, uint8 grey image, {class id: bool mask}) items."""
    image_rows, mask_rows, patch_rows = [], [], []
    for name, image, masks in items:
        image_rows.append({"ImageId": name, "Classes": tuple(sorted(masks)), **image_stats(image)})
        patch_rows.extend({"ImageId": name, **row} for row in patch_stats(image, zlib.crc32(name.encode())))
        for class_id, mask in sorted(masks.items()):
            mask_rows.append({"ImageId": name, "ClassId": class_id, **mask_stats(image, mask)})
    images = pd.DataFrame(image_rows, columns=["ImageId", "Classes", *IMAGE_STATS])
    masks = pd.DataFrame(mask_rows, columns=["ImageId", "ClassId", *MASK_STATS])
    patches = pd.DataFrame(patch_rows, columns=["ImageId", *PATCH_STATS])
    return Stats(images, masks, patches)


def dataset_class_sets(root: str | Path) -> dict[str, tuple[int, ...]]:
    """Image id -> its sorted class set, for every image file of a Kaggle-layout dataset (clean ones too)."""
    layout = data_dir(root)
    table = read_labels(layout.labels)
    table = table[table.EncodedPixels.astype(str).str.strip().ne("")]
    per_image = table.groupby("ImageId").ClassId.apply(lambda s: tuple(sorted(int(c) for c in s))).to_dict()
    return {p.name: per_image.get(p.name, ()) for p in list_images(layout.images)}


def dataset_items(
    root: str | Path, image_ids: Sequence[str] | None = None
) -> Iterable[tuple[str, np.ndarray, dict[int, np.ndarray]]]:
    """(image id, grey image, masks) for the images of a dataset (all of them, or `image_ids` in order)."""
    layout = data_dir(root)
    table = read_labels(layout.labels)
    table = table[table.EncodedPixels.astype(str).str.strip().ne("")]
    by_image = {name: rows for name, rows in table.groupby("ImageId")}
    names = image_ids if image_ids is not None else list(dataset_class_sets(root))
    for name in names:
        image = read_gray(layout.image(name))
        rows = by_image.get(name)
        masks = {} if rows is None else {
            int(r.ClassId): rle.decode(r.EncodedPixels, image.shape) for r in rows.itertuples()
        }
        yield name, image, masks


def matching_mix(
    target: Sequence[tuple[int, ...]], n: int, classes_of: Callable[[int], tuple[int, ...]], limit: int
) -> list[int]:
    """Indices 0..limit-1 (in order) whose class sets give `n` items in the proportions of `target`.

    Compares like with like: the real sample holds only defect images, and a clean image's statistics differ
    from a defective one's. Class sets absent from the candidates within `limit` are left short."""
    sets, counts = np.unique(np.array([",".join(map(str, s)) for s in target]), return_counts=True)
    want = {s: int(round(n * c / len(target))) for s, c in zip(sets, counts)}
    chosen: list[int] = []
    for index in range(limit):
        key = ",".join(map(str, classes_of(index)))
        if want.get(key, 0) > 0:
            want[key] -= 1
            chosen.append(index)
            if not any(want.values()):
                break
    return chosen


def ks_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (NaN ignored;
    NaN when either side is empty)."""
    a = np.sort(np.asarray(a, float)[~np.isnan(np.asarray(a, float))])
    b = np.sort(np.asarray(b, float)[~np.isnan(np.asarray(b, float))])
    if not a.size or not b.size:
        return float("nan")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def compare_columns(
    real: pd.DataFrame, synth: pd.DataFrame, columns: Sequence[str], splits: int = 50, seed: int = 0
) -> pd.DataFrame:
    """Per column: real and synthetic medians, KS(real, synth) on all rows, the floor (mean KS between two
    random halves of the real rows over `splits` splits) and KS at the floor's sample size (mean KS between a
    random real half and as many random synthetic rows, over the same splits), which is what the floor is
    fairly compared with: KS grows as samples shrink, even between identical distributions."""
    rng = np.random.default_rng(seed)
    n = len(real)
    half = n // 2
    rows = []
    draws = [(rng.permutation(n), rng.choice(len(synth), size=min(half, len(synth)), replace=False)) for _ in range(splits)]
    for col in columns:
        r, s = real[col].to_numpy(float), synth[col].to_numpy(float)
        floor = [ks_distance(r[p[:half]], r[p[half : 2 * half]]) for p, _ in draws] if half >= 2 else [np.nan]
        matched = [ks_distance(r[p[:half]], s[q]) for p, q in draws] if half >= 2 and len(s) else [np.nan]
        rows.append(
            {
                "statistic": col,
                "real_median": float(np.nanmedian(r)) if np.isfinite(r).any() else np.nan,
                "synth_median": float(np.nanmedian(s)) if np.isfinite(s).any() else np.nan,
                "ks": ks_distance(r, s),
                "ks_matched": float(np.nanmean(matched)) if np.isfinite(matched).any() else np.nan,
                "floor": float(np.nanmean(floor)) if np.isfinite(floor).any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def classifier_auc(
    real: pd.DataFrame, synth: pd.DataFrame, columns: Sequence[str], seed: int = 0, repeats: int = 5, by_image: bool = False
) -> dict[str, float]:
    """Cross-validated ROC AUC of classifiers telling real rows from synthetic ones on `columns` (0.5: they
    cannot tell; 1.0: always can). Logistic regression on standardised statistics and gradient-boosted trees;
    stratified 5-fold, repeated, the AUC of the pooled out-of-fold scores averaged over repeats. `by_image`:
    rows of one ImageId (patches) stay in one fold, so a classifier cannot learn an image and find it again."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = pd.concat([real[list(columns)], synth[list(columns)]]).to_numpy(float)
    x = np.where(np.isfinite(x), x, np.nanmedian(x, axis=0))  # an all-band image has no steel statistics
    y = np.r_[np.ones(len(real)), np.zeros(len(synth))]
    groups = pd.concat([real.ImageId.map(lambda n: f"r/{n}"), synth.ImageId.map(lambda n: f"s/{n}")]).to_numpy() if by_image else None
    count = (lambda t: t.ImageId.nunique()) if by_image else len
    folds = min(5, count(real), count(synth))
    if folds < 2:
        return {"logistic": float("nan"), "boosting": float("nan")}
    models = {
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
        "boosting": lambda: HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_depth=3, min_samples_leaf=5, random_state=seed
        ),
    }
    out = {}
    for name, build in models.items():
        aucs = []
        for r in range(repeats):
            score = np.zeros(len(y))
            splitter = (StratifiedGroupKFold if by_image else StratifiedKFold)(folds, shuffle=True, random_state=seed + r)
            for train, test in splitter.split(x, y, groups):
                model = build().fit(x[train], y[train])
                score[test] = model.predict_proba(x[test])[:, 1]
            aucs.append(roc_auc_score(y, score))
        out[name] = float(np.mean(aucs))
    return out


@dataclass
class Comparison:
    images: pd.DataFrame  # compare_columns over IMAGE_STATS
    masks: dict[int, pd.DataFrame]  # per class with enough real masks: compare_columns over MASK_STATS
    auc: dict[str, float]
    patch_auc: dict[str, float]  # the same classifiers on random steel patches (PATCH_STATS), folds by image
    n_real: int
    n_synth: int
    real_masks: dict[int, int]
    synth_masks: dict[int, int]

    @property
    def mean_ks(self) -> dict[str, float]:
        """The image statistics' mean KS (all rows and at the floor's sample size) and the floor."""
        t = self.images
        return {k: float(t[k].mean()) for k in ("ks", "ks_matched", "floor")}

    def to_dict(self) -> dict:
        return {
            "n_real": self.n_real,
            "n_synth": self.n_synth,
            "mean_ks": self.mean_ks,
            "auc": self.auc,
            "patch_auc": self.patch_auc,
            "image_stats": self.images.to_dict(orient="records"),
            "mask_stats": {str(c): t.to_dict(orient="records") for c, t in self.masks.items()},
            "real_masks": {str(c): n for c, n in self.real_masks.items()},
            "synth_masks": {str(c): n for c, n in self.synth_masks.items()},
        }


MIN_MASKS = 6  # a class with fewer real masks than this gets no mask comparison (its KS would be noise)


def compare(real: Stats, synth: Stats, splits: int = 50, seed: int = 0) -> Comparison:
    """Everything bench/realism.py reports, for real vs synthetic statistics."""
    images = compare_columns(real.images, synth.images, list(IMAGE_STATS), splits, seed)
    masks = {}
    real_counts = real.masks.ClassId.value_counts().to_dict()
    synth_counts = synth.masks.ClassId.value_counts().to_dict()
    for class_id in sorted(real_counts):
        r = real.masks[real.masks.ClassId == class_id]
        s = synth.masks[synth.masks.ClassId == class_id]
        if len(r) >= MIN_MASKS and len(s) >= 2:
            masks[int(class_id)] = compare_columns(r, s, list(MASK_STATS), splits, seed)
    auc = classifier_auc(real.images, synth.images, list(IMAGE_STATS), seed)
    patch_auc = classifier_auc(real.patches, synth.patches, list(PATCH_STATS), seed, repeats=2, by_image=True)
    return Comparison(
        images, masks, auc, patch_auc, len(real.images), len(synth.images),
        {int(c): int(n) for c, n in sorted(real_counts.items())},
        {int(c): int(n) for c, n in sorted(synth_counts.items())},
    )
