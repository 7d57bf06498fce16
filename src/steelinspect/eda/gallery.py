"""Pick and draw gallery examples: images of a class, images with several classes, truth beside prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import check_size, read_gray
from steelinspect.data.master import RLE_COLUMNS
from steelinspect.draw.overlay import stacked_view, truth_vs_prediction
from steelinspect.errors import ImageError


def pick_class_examples(master: pd.DataFrame, class_id: int, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """Up to k images carrying `class_id`: single-class images first (they show the class alone), then, when
    there are too few, images where it appears with other classes. Random within each kind (seeded `rng`)."""
    has = master.ClassIds.map(lambda ids: class_id in ids)
    alone = master[has & (master.Defect_no == 1)]
    mixed = master[has & (master.Defect_no >= 2)]
    picked = _pick(alone, k, rng)
    if len(picked) < k:
        picked = pd.concat([picked, _pick(mixed, k - len(picked), rng)])
    return picked


def pick_multi_examples(master: pd.DataFrame, k: int, rng: np.random.Generator) -> pd.DataFrame:
    return _pick(master[master.Defect_no >= 2], k, rng)


def _pick(rows: pd.DataFrame, k: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(rows) <= k:
        return rows
    return rows.iloc[np.sort(rng.choice(len(rows), size=k, replace=False))]


def row_masks(row) -> np.ndarray:
    """(4, H, W) bool masks of a master-table row."""
    return rle.build_mask([getattr(row, c) for c in RLE_COLUMNS])


def caption(image_id: str, class_ids) -> str:
    classes = " ".join(map(str, class_ids))
    return f"{image_id}: {'classes ' + classes if classes else 'no defect (clean)'}"


def panels(rows: pd.DataFrame, images: Path, predicted: dict[str, list[str]] | None = None
           ) -> tuple[list[tuple[np.ndarray, str]], list[str]]:
    """(picture, caption) per row, and the problems of images that could not be drawn (skipped, not fatal:
    the report is still useful when one gallery image is corrupt).

    Without `predicted`: the overlay above the masks on black. With `predicted` (image id -> four RLEs in class
    order, e.g. a submission's): the true masks above the predicted ones."""
    out, skipped = [], []
    for row in rows.itertuples(index=False):
        try:
            gray = read_gray(images / row.ImageId)
            check_size(gray, images / row.ImageId)
        except ImageError as exc:
            skipped.append(str(exc))
            continue
        if predicted is None:
            out.append((stacked_view(gray, row_masks(row)), caption(row.ImageId, row.ClassIds)))
            continue
        rles = predicted.get(row.ImageId, [""] * 4)
        guessed = [c for c, r in zip(CLASS_IDS, rles) if r]
        label = f"{caption(row.ImageId, row.ClassIds)}   (top: truth; bottom: predicted {' '.join(map(str, guessed)) or 'clean'})"
        out.append((truth_vs_prediction(gray, row_masks(row), rle.build_mask(rles)), label))
    return out, skipped

