"""Validate a data directory: every rule, one pass, one report.

Rules: unreadable label file or unknown columns; bad rows (field count, ImageId_ClassId form);
ClassId not an integer in 1-4; duplicate (ImageId, ClassId) rows; malformed RLE; masks of two classes of one
image overlapping; label rows whose image is missing; images unreadable, corrupt, truncated, not 1600x256 or
declaring more pixels than the limit (data.images.pixel_limit; refused from the header, never decoded).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE
from steelinspect.data.images import check_size, decoding_pool, read_gray, read_size
from steelinspect.data.labels import parse_labels
from steelinspect.data.layout import data_dir
from steelinspect.data.master import image_ids
from steelinspect.errors import DataError, ImageError, Problem

JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"


@dataclass
class CheckReport:
    """Everything `check` found. `ok` is True when there are no problems."""

    root: Path
    label_format: str | None = None
    images: int = 0
    label_rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(p.kind, p.file, p.row, p.problem) for p in self.problems], columns=["kind", "file", "row", "problem"]
        )


def check_image(path: Path, shape: tuple[int, int] = IMAGE_SHAPE) -> Problem | None:
    """One image file: readable, complete, of the expected size. Returns the problem or None."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        # A truncated JPEG may still decode (grey fill) or fail vaguely; the missing end marker is specific.
        try:
            with path.open("rb") as fh:
                head = fh.read(2)
                fh.seek(0, 2)
                if head == JPEG_START and fh.tell() > 4:
                    fh.seek(-2, 2)
                    if fh.read(2) != JPEG_END:
                        return Problem("bad_image", str(path), "truncated JPEG (no end-of-image marker)")
        except OSError as exc:
            return Problem("bad_image", str(path), f"cannot read file ({exc.strerror or exc})")
    try:
        image = read_gray(path)
        check_size(image, path, shape)
    except ImageError as exc:
        return Problem("bad_image", str(path), exc.problem)
    return None


def overlapping_classes(runs: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[int, int] | None:
    """First pair of classes whose runs overlap (runs of one class are already sorted and disjoint)."""
    if len(runs) < 2:
        return None
    starts = np.concatenate([s for s, _ in runs.values()])
    ends = np.concatenate([s + n for s, n in runs.values()])
    owner = np.concatenate([np.full(len(s), c) for c, (s, _) in runs.items()])
    order = np.argsort(starts, kind="stable")
    starts, ends, owner = starts[order], ends[order], owner[order]
    reach = np.maximum.accumulate(ends)
    clash = np.flatnonzero(starts[1:] < reach[:-1])
    if not len(clash):
        return None
    i = clash[0] + 1
    j = int(np.flatnonzero(ends[:i] > starts[i])[0])
    return tuple(sorted((int(owner[j]), int(owner[i]))))


def check_dataset(
    root: str | Path,
    shape: tuple[int, int] = IMAGE_SHAPE,
    workers: int = 4,
    on_image: Callable[[], None] | None = None,
) -> CheckReport:
    """Run every rule over DATA_DIR and return one report. Raises only when the layout itself is missing
    (no folder, no train.csv, no train_images/) or the label file is unreadable."""
    layout = data_dir(root)
    labels = parse_labels(layout.labels)
    report = CheckReport(root=layout.root, label_format=labels.format, label_rows=len(labels.table))
    report.problems.extend(labels.problems)
    labels_file = str(layout.labels)

    ids = image_ids(layout.images)
    report.images = len(ids)
    known = set(ids)
    runs_by_image: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for r in labels.table.itertuples(index=False):
        if r.ImageId not in known:
            report.problems.append(
                Problem("missing_image", labels_file, f"image {r.ImageId} is not in {layout.images.name}/", r.row)
            )
        try:
            runs_by_image.setdefault(r.ImageId, {})[r.ClassId] = rle.parse(r.EncodedPixels, shape)
        except rle.RLEError as exc:
            report.problems.append(
                Problem("bad_rle", labels_file, f"EncodedPixels of {r.ImageId} class {r.ClassId}: {exc.problem}", r.row)
            )
    rows = {(r.ImageId, r.ClassId): r.row for r in labels.table.itertuples(index=False)}
    for image_id, runs in runs_by_image.items():
        pair = overlapping_classes(runs)
        if pair:
            report.problems.append(
                Problem(
                    "overlap",
                    labels_file,
                    f"masks of classes {pair[0]} and {pair[1]} of {image_id} overlap",
                    rows[(image_id, pair[1])],
                )
            )

    def one(image_id: str) -> Problem | None:
        problem = check_image(layout.image(image_id), shape)
        if on_image is not None:
            on_image()
        return problem

    with decoding_pool(workers) as pool:
        report.problems.extend(p for p in pool.map(one, ids) if p is not None)
    return report


def preflight(datasets: Iterable, workers: int = 4) -> None:
    """Before training: every image the datasets will read has a readable header, within the pixel limit and of
    the size a dataset requires (`required_size`, (width, height) or None). Reads headers only, so it is quick;
    raises DataError naming every bad file, instead of failing inside a loader after an epoch."""
    needs: dict[Path, tuple[int, int] | None] = {}
    for dataset in datasets:
        for path in dataset.image_paths():
            needs.setdefault(path, dataset.required_size)

    def one(item) -> Problem | None:
        path, size = item
        try:
            width, height = read_size(path)
        except ImageError as exc:
            return Problem("bad_image", str(path), exc.problem)
        if size is not None and (width, height) != tuple(size):
            return Problem("bad_image", str(path), f"image is {width}x{height}, expected {size[0]}x{size[1]} "
                                                   f"(width x height)")
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        problems = [p for p in pool.map(one, needs.items()) if p is not None]
    if problems:
        raise DataError(problems)
