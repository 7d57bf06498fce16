"""The synthetic Severstal-format generator: the embedded default dataset for the demo, tests and benchmarks.

It writes the Kaggle layout (OUT_DIR/train.csv + OUT_DIR/train_images/<9 hex>.jpg, 1600x256, 3-channel grey
JPEGs like the real ones) and is deterministic for a seed: image i depends only on (seed, i), never on the
number of workers.

What it imitates (see synth_draw for the look of the steel and the defects):
- class sets sampled from the real label-combination frequencies of the 12,568 Kaggle training images (47%
  clean, class 3 dominant, ~6% of defect images with two or more classes), shipped below as a constant;
- defect signatures: class 1 clusters of small pits, class 2 sparse thin vertical traces, class 3 a few
  separate scratches and abraded bands along the rolling direction (half of them the image's full height) or
  a field of short marks, class 4 one to a few nearby raised rough scabs with bright rims;
- sharp-edged marks that are not defects on many images, clean or not (blotches, single thin lines, bright
  specks, as on the clean parts of real plates), so that a classifier learns to leave them alone;
- labels as coarse polygons around the drawn defect (one per band for class 3, one around near marks),
  classes never overlapping.
bench/realism.py measures how close the images and masks come to real ones.
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
from steelinspect.data.images import opencv_single_threaded
from steelinspect.data.labels import write_labels
from steelinspect.data.synth_draw import DRAWERS, black_band, paint_band, steel_texture, strip_columns
from steelinspect.errors import ConfigError
from steelinspect.io import remove_stale_temporaries

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

LABEL_FORMATS = ("new", "original")
FULL_SIZE = 12_568  # images in the real training set
KNEE = 215.0  # grey level above which highlights are compressed


@dataclass
class SynthConfig:
    images: int = 200
    seed: int = 0
    label_format: str = "new"  # "new" (ImageId,ClassId,EncodedPixels) or "original" (ImageId_ClassId,...)
    workers: int | None = None  # worker processes; None: all cores
    jpeg_quality: int = 92

    def validate(self) -> None:
        if isinstance(self.images, bool) or not isinstance(self.images, (int, np.integer)) or self.images < 1:
            raise ConfigError(f"--images must be a whole number >= 1, got {self.images!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if self.label_format not in LABEL_FORMATS:
            raise ConfigError(f"--format must be 'new' or 'original', got {self.label_format!r}")
        if self.workers is not None and (not isinstance(self.workers, (int, np.integer)) or self.workers < 1):
            raise ConfigError(f"--workers must be >= 1, got {self.workers!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be in 1-100, got {self.jpeg_quality!r}")


def image_id(seed: int, index: int) -> str:
    """Deterministic 9-hex-digit name like the real ones (e.g. 0a1b2c3d4.jpg)."""
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).hexdigest()[:9] + ".jpg"


def image_classes(seed: int, index: int) -> tuple[int, ...]:
    """The class set drawn for image `index` (its own random stream, so it is cheap to ask for).

    A class can still end up without a mask in `render` when the later class's label is wholly covered by an
    earlier one, which is rare."""
    rng = np.random.default_rng([seed, index, 0])
    return _COMBOS[int(rng.choice(len(_COMBOS), p=_COMBO_P))]


def render(seed: int, index: int, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Image `index` of dataset `seed`: uint8 (H, W) and {class_id: bool label mask} (never overlapping)."""
    rng = np.random.default_rng([seed, index, 1])
    image = steel_texture(rng, shape)
    band = black_band(rng, shape[1])
    cols = strip_columns(band, shape[1])
    taken = np.zeros(shape, bool)
    masks: dict[int, np.ndarray] = {}
    for class_id in image_classes(seed, index):
        mask = DRAWERS[class_id](image, rng, cols)
        mask[:, : cols[0]] = False
        mask[:, cols[1] :] = False
        mask &= ~taken  # the later class gives way, so classes never overlap
        if mask.any():
            masks[class_id] = mask
            taken |= mask
    if band is not None:
        paint_band(image, rng, band)
    # The camera's soft knee: highlights compress instead of clipping flat (real bright strips keep detail).
    np.minimum(image, image * 0.35 + KNEE * 0.65, out=image)  # = KNEE + (image - KNEE) * 0.35 above the knee
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8), masks


def _write_one(args: tuple[int, int, Path, int]) -> tuple[str, dict[int, str]]:
    seed, index, folder, quality = args
    image, masks = render(seed, index)
    name = image_id(seed, index)
    # 3 equal channels, like the real Kaggle JPEGs.
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 always encodes a uint8 image
        raise RuntimeError(f"JPEG encoding failed for {name}")
    (folder / name).write_bytes(data.tobytes())
    return name, {c: rle.encode(m) for c, m in masks.items()}


def generate_from_config(
    out_dir: str | Path,
    config: SynthConfig,
    progress: bool = False,
    on_image: Callable[[], None] | None = None,
) -> Path:
    """Write a synthetic dataset to `out_dir` (which must not already hold a dataset) and return it.

    The images and labels are built in a hidden staging folder inside `out_dir` and moved into place at the
    end, so an interrupted run never leaves a half-written dataset. `progress` draws a bar on stderr;
    `on_image` is called once per finished image (for a caller's own progress bar).
    """
    config.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("exists and is not a folder", out)
    if (out / LABELS_FILE).exists() or (out / IMAGES_DIR).exists():
        raise ConfigError(
            f"already holds a dataset ({LABELS_FILE} or {IMAGES_DIR}/); refusing to overwrite it: "
            "choose an empty folder",
            out,
        )
    out.mkdir(parents=True, exist_ok=True)
    # The staging folder is named like io.atomic_write's temporaries (.{target}.{pid}.{random}.tmp), so a run
    # killed outright has its staging removed by the next run into the same folder.
    remove_stale_temporaries(out / "dataset")
    staging = out / f".dataset.{os.getpid()}.staging.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    folder = staging / IMAGES_DIR
    folder.mkdir(parents=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.images, desc="synth", unit="img", leave=False)
    try:
        jobs = [(config.seed, i, folder, config.jpeg_quality) for i in range(config.images)]
        # A worker process costs ~0.2 s to start: not worth it for a handful of images. Workers run OpenCV
        # single-threaded: the processes already fill the cores.
        n_workers = min(config.workers or os.cpu_count() or 1, max(1, config.images // 16))
        results = []
        opencv_single_threaded()  # here and in each worker: the processes already fill the cores
        pool = ProcessPoolExecutor(n_workers, initializer=opencv_single_threaded) if n_workers > 1 else None
        try:
            for result in pool.map(_write_one, jobs, chunksize=8) if pool else map(_write_one, jobs):
                results.append(result)
                if bar is not None:
                    bar.update()
                if on_image:
                    on_image()
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        names = [name for name, _ in results]
        if len(set(names)) != len(names):  # pragma: no cover - 36 bits of hash; guards the invariant
            raise RuntimeError("synthetic image names collided; use another seed")
        table = pd.DataFrame(
            [(name, c, text) for name, rles in results for c, text in sorted(rles.items())],
            columns=["ImageId", "ClassId", "EncodedPixels"],
        )
        write_labels(table, staging / LABELS_FILE, config.label_format, image_ids=names)
        # Images first, labels last: a train.csv in out_dir means the dataset is complete.
        os.replace(folder, out / IMAGES_DIR)
        os.replace(staging / LABELS_FILE, out / LABELS_FILE)
    finally:
        if bar is not None:
            bar.close()
        shutil.rmtree(staging, ignore_errors=True)
    return out


def generate(
    out_dir: str | Path,
    images: int = 200,
    seed: int = 0,
    label_format: str = "new",
    workers: int | None = None,
    progress: bool = False,
    on_image: Callable[[], None] | None = None,
    config: SynthConfig | None = None,
) -> Path:
    """Write `images` synthetic images and their labels to `out_dir`; see `generate_from_config`.
    A `config`, when given, replaces images/seed/label_format/workers."""
    config = config or SynthConfig(images=images, seed=seed, label_format=label_format, workers=workers)
    return generate_from_config(out_dir, config, progress=progress, on_image=on_image)
