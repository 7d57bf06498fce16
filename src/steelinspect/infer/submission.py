"""Kaggle submission files: write one (`ImageId,EncodedPixels,ClassId`, one row per image and class, empty
EncodedPixels where there is no defect), read one in either Kaggle label format, and score one against a
labelled data directory with the competition metric.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, NUM_CLASSES
from steelinspect.data.labels import parse_labels
from steelinspect.data.layout import data_dir
from steelinspect.data.master import RLE_COLUMNS, build_master
from steelinspect.errors import DataError, LabelError, Problem
from steelinspect.io import atomic_write
from steelinspect.metrics.dice import DiceCounts, DiceReport

SUBMISSION_COLUMNS = ("ImageId", "EncodedPixels", "ClassId")


class SubmissionWriter:
    """Streams rows into a temporary file renamed over `path` only when the block ends without error.

        with SubmissionWriter("submission.csv") as sub:
            sub.add("0002cc93b.jpg", ["", "1 10", "", ""])
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.images = 0
        self._context = None

    def __enter__(self) -> "SubmissionWriter":
        self._context = atomic_write(self.path)
        tmp = self._context.__enter__()
        self._fh = tmp.open("w", newline="")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._writer.writerow(SUBMISSION_COLUMNS)
        return self

    def add(self, image_id: str, rles: list[str]) -> None:
        """Four RLE strings in class order ("" = no defect of that class)."""
        if len(rles) != NUM_CLASSES:
            raise ValueError(f"expected {NUM_CLASSES} RLE strings for {image_id}, got {len(rles)}")
        for class_id, encoded in zip(CLASS_IDS, rles):
            self._writer.writerow((image_id, encoded, class_id))
        self.images += 1

    def __exit__(self, *exc) -> bool:
        self._fh.close()
        return self._context.__exit__(*exc)


def write_submission(path: str | Path, rows: Iterable[tuple[str, list[str]]]) -> int:
    """Write (image_id, four RLEs) pairs; returns the number of images."""
    with SubmissionWriter(path) as sub:
        for image_id, rles in rows:
            sub.add(image_id, rles)
    return sub.images


@dataclass
class Submission:
    """A parsed submission: the images it names (in file order) and their four RLEs each."""

    path: Path
    format: str
    masks: dict[str, list[str]]  # image id -> four RLEs in class order ("" = empty)
    rows: dict[tuple[str, int], int]  # (image id, class) -> line in the file, for error messages

    @property
    def image_ids(self) -> list[str]:
        return list(self.masks)


def read_submission(path: str | Path) -> Submission:
    """Read a submission or label file in either Kaggle format, validating every row.

    Column order does not matter (columns are found by name). Raises LabelError when the file cannot be read
    and DataError listing every bad row (bad class, duplicate, malformed RLE), each with file and row.
    """
    path = Path(path)
    labels = parse_labels(path)
    problems = list(labels.problems)
    masks = {image_id: [""] * NUM_CLASSES for image_id in _named_images(path, labels.format)}
    rows: dict[tuple[str, int], int] = {}
    for r in labels.table.itertuples(index=False):
        try:
            rle.parse(r.EncodedPixels)
        except rle.RLEError as exc:
            problems.append(Problem("bad_rle", str(path), f"EncodedPixels: {exc.problem}", int(r.row)))
            continue
        masks.setdefault(r.ImageId, [""] * NUM_CLASSES)[int(r.ClassId) - 1] = r.EncodedPixels
        rows[(r.ImageId, int(r.ClassId))] = int(r.row)
    if problems:
        raise DataError(sorted(problems, key=lambda p: p.row or 0))
    return Submission(path=path, format=labels.format, masks=masks, rows=rows)


def _named_images(path: Path, fmt: str) -> list[str]:
    """Every image the file names, including ones whose rows are all empty (parse_labels keeps only
    defect rows of the original format)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [c.strip() for c in next(reader)]
        column = header.index("ImageId_ClassId" if fmt == "original" else "ImageId")
        seen: dict[str, None] = {}
        for values in reader:
            if len(values) != len(header) or not values[column].strip():
                continue  # parse_labels reports these rows
            name = values[column].strip()
            if fmt == "original":
                name = name.rpartition("_")[0]
            if name:
                seen.setdefault(name, None)
    return list(seen)


@dataclass
class ScoreResult:
    report: DiceReport
    submission_images: int
    truth_images: int
    scored_images: int
    format: str

    @property
    def unscored_truth_images(self) -> int:
        return self.truth_images - self.scored_images


def score_submission(
    submission: str | Path,
    truth: str | Path,
    all_images: bool = False,
    on_image: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Kaggle metric of a submission against the labelled data directory `truth`.

    Scores the images the submission names; with `all_images` every image of `truth` is scored and those the
    submission does not name count as empty predictions (right for a label file in the newer format, which
    lists defect rows only). Raises DataError when the submission names an image that `truth` lacks.
    """
    sub = read_submission(submission)
    master = build_master(truth)
    true_rles = {r.ImageId: [getattr(r, c) for c in RLE_COLUMNS] for r in master.itertuples(index=False)}
    labels_file = str(data_dir(truth).labels)
    unknown = [image_id for image_id in sub.masks if image_id not in true_rles]
    if unknown:
        problems = [
            Problem(
                "unknown_image",
                str(sub.path),
                f"image {image_id} is not in the truth data ({labels_file})",
                _first_row(sub, image_id),
            )
            for image_id in unknown
        ]
        raise DataError(problems)
    ids = list(true_rles) if all_images else sub.image_ids
    if not ids:
        raise LabelError("the submission names no image", sub.path)
    counts = DiceCounts()
    empty = [""] * NUM_CLASSES
    for image_id in ids:
        counts.add_rles(image_id, sub.masks.get(image_id, empty), true_rles[image_id])
        if on_image is not None:
            on_image(1)
    return ScoreResult(
        report=counts.report(),
        submission_images=len(sub.masks),
        truth_images=len(true_rles),
        scored_images=len(ids),
        format=sub.format,
    )


def _first_row(sub: Submission, image_id: str) -> int | None:
    rows = [row for (name, _), row in sub.rows.items() if name == image_id]
    return min(rows) if rows else None

