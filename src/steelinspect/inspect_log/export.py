"""Reviewed inspections -> a Kaggle-layout dataset (train.csv in the newer format + train_images/) that
`check` and `train` take as is: what the reviewers said is the label.

Labels per image: the classes after the reviews (store.InspectionLog.reviewed), each with the union of its
regions still standing. An image is left out, with the reason, when its file is gone or unreadable or not
256x1600, or when a review set a class that has no region (reviews do not redraw masks, and a defect class
without a mask would teach the segmenter that the plate is clean there). When one image id was inspected more
than once, its latest reviewed inspection is exported.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE, IMAGES_DIR, LABELS_FILE
from steelinspect.data.check import check_image
from steelinspect.errors import Problem
from steelinspect.inspect_log.store import InspectionLog, LogFilter, ReviewedImage
from steelinspect.io import atomic_dir

EXPORT_MARKER = ".steelinspect-export"


@dataclass
class ExportStats:
    images: int = 0
    defect_rows: int = 0
    clean: int = 0
    replaced: int = 0  # earlier inspections of an image id inspected again
    skipped: list[Problem] = field(default_factory=list)


def _labels(item: ReviewedImage) -> dict[int, str] | str:
    """class -> RLE of the image's reviewed labels, or why it cannot be exported."""
    masks: dict[int, np.ndarray] = {}
    for stored in item.regions:
        mask = masks.setdefault(stored.region.class_id, np.zeros(IMAGE_SHAPE, dtype=bool))
        mask |= rle.decode(stored.region.rle, IMAGE_SHAPE)
    missing = [c for c in item.classes if c not in masks]
    if missing:
        return (f"class(es) {' '.join(map(str, missing))} set by review without a region "
                "(reviews do not redraw masks)")
    return {c: rle.encode(masks[c]) for c in sorted(masks)}


def export_reviewed(log: InspectionLog, out: str | Path, filt: LogFilter = LogFilter(),
                    on_image: Callable[[], None] | None = None) -> ExportStats:
    """Write the reviewed inspections matching `filt` as a dataset at `out` (replaced whole, atomically; an
    existing folder is replaced only when it is empty or a previous export)."""
    stats = ExportStats()
    latest: dict[str, ReviewedImage] = {}
    for item in log.reviewed(filt):  # oldest first: a later inspection of the same image id wins
        stats.replaced += item.entry.image_id in latest
        latest[item.entry.image_id] = item
    out = Path(out)
    ours = (out / EXPORT_MARKER).is_file()

    def replaceable(entry: Path) -> bool:
        return ours and entry.name in (EXPORT_MARKER, LABELS_FILE, IMAGES_DIR)

    with atomic_dir(out, replaceable=replaceable, what="exported dataset") as tmp:
        (tmp / EXPORT_MARKER).write_text("reviewed inspections exported by steelinspect export-reviewed\n")
        images = tmp / IMAGES_DIR
        images.mkdir()
        with (tmp / LABELS_FILE).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["ImageId", "ClassId", "EncodedPixels"])
            for image_id, item in sorted(latest.items()):
                if on_image:
                    on_image()
                if Path(image_id).name != image_id or image_id.startswith("."):  # it becomes a file name
                    stats.skipped.append(Problem("bad_image_id", image_id,
                                                 f"inspection {item.entry.id}: not a plain file name"))
                    continue
                source = Path(item.entry.path) if item.entry.path else None
                if source is None or not source.is_file():
                    stats.skipped.append(Problem("missing_image", str(source or image_id),
                                                 f"inspection {item.entry.id}: the image file is gone"))
                    continue
                problem = check_image(source)
                if problem is not None:
                    stats.skipped.append(problem)
                    continue
                labels = _labels(item)
                if isinstance(labels, str):
                    stats.skipped.append(Problem("unlabelled_class", str(source),
                                                 f"inspection {item.entry.id}: {labels}"))
                    continue
                shutil.copyfile(source, images / image_id)
                for class_id, encoded in labels.items():
                    writer.writerow([image_id, class_id, encoded])
                stats.images += 1
                stats.defect_rows += len(labels)
                stats.clean += not labels
    return stats
