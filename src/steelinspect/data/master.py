"""The per-image master table (the capstone's df_master): one row per image in train_images/.

Columns: ImageId, Defect (bool), Defect_no (number of classes), ClassIds (list of int),
EncodedPixels_1..4 (RLE, "" when absent), Area_1..4 (defect pixels per class).
An image with no label rows is defect-free.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import is_image_file
from steelinspect.data.labels import read_labels
from steelinspect.data.layout import data_dir
from steelinspect.errors import DataError, Problem

RLE_COLUMNS = [f"EncodedPixels_{c}" for c in CLASS_IDS]
AREA_COLUMNS = [f"Area_{c}" for c in CLASS_IDS]
MASTER_COLUMNS = ["ImageId", "Defect", "Defect_no", "ClassIds", *RLE_COLUMNS, *AREA_COLUMNS]


def image_ids(folder: str | Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and is_image_file(p))


def master_from_labels(labels: pd.DataFrame, ids: list[str], labels_file: str = "train.csv") -> pd.DataFrame:
    """Build the master table from a long label table and the list of image ids.

    Raises DataError when a label row names an image that is not in `ids`, or an RLE is malformed.
    """
    known = set(ids)
    problems = [
        Problem("missing_image", labels_file, f"image {r.ImageId} is not in train_images/", r.row)
        for r in labels.itertuples(index=False)
        if r.ImageId not in known
    ]
    per_image: dict[str, dict[int, str]] = {}
    for r in labels.itertuples(index=False):
        per_image.setdefault(r.ImageId, {})[int(r.ClassId)] = r.EncodedPixels
        try:
            rle.parse(r.EncodedPixels)
        except rle.RLEError as exc:
            problems.append(Problem("bad_rle", labels_file, f"EncodedPixels: {exc.problem}", r.row))
    if problems:
        raise DataError(problems)
    rows = []
    for image_id in ids:
        masks = per_image.get(image_id, {})
        classes = sorted(masks)
        rows.append(
            [
                image_id,
                bool(classes),
                len(classes),
                classes,
                *(masks.get(c, "") for c in CLASS_IDS),
                *(rle.area(masks[c]) if c in masks else 0 for c in CLASS_IDS),
            ]
        )
    return pd.DataFrame(rows, columns=MASTER_COLUMNS)


def build_master(root: str | Path) -> pd.DataFrame:
    """Master table of a data directory (strict: bad labels raise DataError)."""
    layout = data_dir(root)
    labels = read_labels(layout.labels)
    return master_from_labels(labels, image_ids(layout.images), str(layout.labels))


def write_master(master: pd.DataFrame, path: str | Path) -> None:
    """CSV with ClassIds written as space-separated ids ("1 3")."""
    from steelinspect.io import atomic_write

    out = master.copy()
    out["ClassIds"] = out["ClassIds"].map(lambda ids: " ".join(map(str, ids)))
    with atomic_write(path) as tmp:
        out.to_csv(tmp, index=False)


def read_master(path: str | Path) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in ["ImageId", "ClassIds", *RLE_COLUMNS]})
    table["ClassIds"] = table["ClassIds"].map(lambda s: [int(x) for x in s.split()])
    table["Defect"] = table["Defect"].astype(str).str.lower().eq("true")
    return table
