"""`steelinspect show`: one image of a dataset with its labelled masks."""

from __future__ import annotations

from pathlib import Path

from steelinspect import rle
from steelinspect.data.labels import read_labels
from steelinspect.data.layout import data_dir
from steelinspect.eda.figures import show_figure
from steelinspect.errors import ImageError


def render_image(root: str | Path, image_id: str, out_png: str | Path) -> Path:
    layout = data_dir(root)
    path = layout.image(image_id)
    if not path.is_file():
        raise ImageError(f"no image {image_id!r} in {layout.images.name}/", layout.images)
    labels = read_labels(layout.labels)
    rows = labels[labels.ImageId == image_id]
    masks = rle.build_mask({int(r.ClassId): r.EncodedPixels for r in rows.itertuples(index=False)})
    classes = " ".join(str(c) for c in sorted(rows.ClassId)) or "none (clean)"
    return show_figure(path, masks, f"{image_id}: classes {classes}", Path(out_png))
