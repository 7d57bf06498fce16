"""`steelinspect show`: one image of a dataset with its labelled masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import check_size, read_gray
from steelinspect.data.labels import read_labels
from steelinspect.data.layout import data_dir
from steelinspect.draw.overlay import stacked_view
from steelinspect.eda.figures import example_figure
from steelinspect.eda.gallery import caption
from steelinspect.errors import ImageError, LabelError


def image_masks(root: str | Path, image_id: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(grey image, (4, H, W) bool masks, class ids) of one labelled image.

    Raises ImageError when the image is not in train_images/ or unreadable, LabelError naming train.csv and the
    row when one of its masks is malformed (the rest of the file is only read, as `read_labels` does).
    """
    layout = data_dir(root)
    path = layout.image(image_id)
    if not path.is_file():
        raise ImageError(f"no image {image_id!r} in {layout.images.name}/ (image ids are file names, e.g. "
                         f"0002cc93b.jpg)", layout.images)
    labels = read_labels(layout.labels)
    masks = np.zeros((len(CLASS_IDS), *IMAGE_SHAPE), dtype=bool)
    classes = []
    for r in labels[labels.ImageId == image_id].itertuples(index=False):
        try:
            masks[int(r.ClassId) - 1] = rle.decode(r.EncodedPixels)
        except rle.RLEError as exc:
            raise LabelError(f"EncodedPixels of {image_id} class {r.ClassId}: {exc.problem}", layout.labels,
                             r.row) from None
        classes.append(int(r.ClassId))
    gray = read_gray(path)
    check_size(gray, path)
    return gray, masks, sorted(classes)


def render_image(root: str | Path, image_id: str, out_png: str | Path) -> Path:
    """Write a PNG of the image with its masks (overlay above masks on black, class legend). Returns its path."""
    gray, masks, classes = image_masks(root, image_id)
    return example_figure([(stacked_view(gray, masks), caption(image_id, classes))], "", Path(out_png))
