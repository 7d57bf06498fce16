"""Read train.csv in either Kaggle format into one long table of defect rows.

Formats, detected from the header:
- newer:    ImageId,ClassId,EncodedPixels              (defect rows only)
- original: ImageId_ClassId,EncodedPixels              (4 rows per image, empty EncodedPixels = no defect)

The result has one row per (image, class) mask: ImageId (str), ClassId (int), EncodedPixels (str),
row (the 1-based line in the file, header = 1, so errors can point at it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from steelinspect.constants import CLASS_IDS
from steelinspect.errors import DataError, LabelError, Problem

NEW_COLUMNS = ("ImageId", "ClassId", "EncodedPixels")
ORIGINAL_COLUMNS = ("ImageId_ClassId", "EncodedPixels")
LABEL_COLUMNS = ["ImageId", "ClassId", "EncodedPixels", "row"]


@dataclass
class Labels:
    """Parsed label rows plus every row-level problem met while parsing."""

    table: pd.DataFrame
    format: str  # "new" or "original"
    problems: list[Problem] = field(default_factory=list)


def detect_format(header: list[str], path: str | Path = "train.csv") -> str:
    """'new' or 'original' from the header; LabelError when it is neither."""
    cols = [c.strip() for c in header]
    if "ImageId_ClassId" in cols and "EncodedPixels" in cols:
        return "original"
    if all(c in cols for c in NEW_COLUMNS):
        return "new"
    raise LabelError(
        f"header {','.join(cols)!r} is neither Kaggle format: expected "
        f"{','.join(NEW_COLUMNS)!r} or {','.join(ORIGINAL_COLUMNS)!r}",
        path,
        1,
    )


def parse_labels(path: str | Path) -> Labels:
    """Read a label file, collecting row problems instead of stopping at the first one.

    Raises LabelError only when the file cannot be read at all (missing, no header, unknown format).
    Problems collected: unknown columns, bad ImageId_ClassId, ClassId not an integer in 1-4, duplicate
    (ImageId, ClassId) rows. RLE strings are not validated here (see data.check).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError("label file not found", path)
    name = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelError(f"cannot read label file ({exc})", path) from None
    if not rows:
        raise LabelError("label file is empty (no header)", path)
    header = [c.strip() for c in rows[0]]
    fmt = detect_format(header, path)
    known = ORIGINAL_COLUMNS if fmt == "original" else NEW_COLUMNS
    problems = [
        Problem("unknown_column", name, f"unknown column {c!r} (expected {', '.join(known)})", 1)
        for c in header
        if c not in known
    ]
    index = {c: header.index(c) for c in known}
    records = []
    for line, values in enumerate(rows[1:], start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(
                Problem("bad_row", name, f"has {len(values)} fields, the header has {len(header)}", line)
            )
            continue
        rle = values[index["EncodedPixels"]].strip()
        if fmt == "original":
            key = values[index["ImageId_ClassId"]].strip()
            image_id, sep, class_text = key.rpartition("_")
            if not sep or not image_id:
                problems.append(
                    Problem("bad_row", name, f"ImageId_ClassId {key!r} is not '<image>_<class>'", line)
                )
                continue
            if not rle:
                _class_id(class_text, name, line, problems)
                continue  # original format: an empty mask row means "no defect of this class"
        else:
            image_id = values[index["ImageId"]].strip()
            class_text = values[index["ClassId"]].strip()
            if not image_id:
                problems.append(Problem("bad_row", name, "ImageId is empty", line))
                continue
        class_id = _class_id(class_text, name, line, problems)
        if class_id is None:
            continue
        records.append((image_id, class_id, rle, line))
    # Duplicates in one pass over a dict of the first row of each (image, class): linear in the rows.
    first: dict[tuple[str, int], int] = {}
    kept = []
    for record in records:
        image_id, class_id, _, line = record
        seen = first.setdefault((image_id, class_id), line)
        if seen == line:
            kept.append(record)
        else:
            problems.append(
                Problem("duplicate", name, f"duplicate row for image {image_id} class {class_id} (first at row {seen})",
                        line)
            )
    table = pd.DataFrame(kept, columns=LABEL_COLUMNS).astype(
        {"ImageId": object, "ClassId": "int64", "EncodedPixels": object, "row": "int64"}
    )
    return Labels(table=table, format=fmt, problems=problems)


def _class_id(text: str, file: str, line: int, problems: list[Problem]) -> int | None:
    try:
        value = int(text)
    except ValueError:
        problems.append(Problem("bad_class", file, f"ClassId {text!r} is not an integer", line))
        return None
    if value not in CLASS_IDS:
        problems.append(
            Problem("bad_class", file, f"ClassId {value} is outside {CLASS_IDS[0]}-{CLASS_IDS[-1]}", line)
        )
        return None
    return value


def read_labels(path: str | Path) -> pd.DataFrame:
    """Strict reader: the long table of defect rows, or DataError listing every row problem."""
    labels = parse_labels(path)
    if labels.problems:
        raise DataError(labels.problems)
    return labels.table


def write_labels(table: pd.DataFrame, path: str | Path, fmt: str = "new", image_ids: list[str] | None = None) -> None:
    """Write defect rows in a Kaggle format. The original format needs `image_ids` (every image,
    including clean ones) because it lists 4 rows per image."""
    from steelinspect.io import atomic_write

    path = Path(path)
    if fmt == "new":
        out = table[["ImageId", "ClassId", "EncodedPixels"]].sort_values(["ImageId", "ClassId"])
    elif fmt == "original":
        ids = sorted(set(image_ids if image_ids is not None else table.ImageId))
        lookup = {(r.ImageId, int(r.ClassId)): r.EncodedPixels for r in table.itertuples(index=False)}
        out = pd.DataFrame(
            [(f"{i}_{c}", lookup.get((i, c), "")) for i in ids for c in CLASS_IDS],
            columns=list(ORIGINAL_COLUMNS),
        )
    else:
        raise ValueError(f"unknown label format {fmt!r}: use 'new' or 'original'")
    with atomic_write(path) as tmp:
        out.to_csv(tmp, index=False)
