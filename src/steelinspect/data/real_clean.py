"""Clean frames cut from real defect images: the columns no mask comes near, mirrored out to a full frame.

The real sample holds only defect images, yet a model trained on synthetic steel must also leave real clean
steel alone (roll marks, stains, lamp reflections). Severstal's masks are drawn per column span along the
strip, so the columns that no mask touches (with a margin, since annotators' polygons are coarse) are real
defect-free steel. Each such span, at least `min_width` wide, becomes one 1600x256 frame by mirroring it
(numpy's "symmetric" padding, repeated), which keeps the texture continuous at every seam.

Where a span reaches into the out-of-strip black band, only its steel is mirrored and the band is kept once at
its side, as a real frame has it: mirroring the band with the strip's edge would put several bright strip edges
in one frame (a synthetic-trained step 1 scored such frames 0.76-1.00, as it would a class 3 band), which no
real frame shows. A span with less than `min_width` columns of steel is no steel frame and is left out.
Checked on the real sample: narrower sub-spans cut from its widest clean spans and mirrored score as the wide
span does (mean difference -0.01), so mirroring itself does not bias the score; scoring a narrow span alone at
the model's scale instead, with no mirroring, scored 0.11 lower (fewer places for the strongest mark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from steelinspect.constants import IMAGE_SHAPE
from steelinspect.data.realism import steel_columns, widest_run

MARGIN = 32  # px kept between a clean span and the nearest mask column
MIN_WIDTH = 160  # px: narrower spans would be mirrored ten times over


@dataclass(frozen=True)
class CleanSpan:
    image_id: str
    x0: int  # first column (inclusive)
    x1: int  # last column (exclusive)

    @property
    def name(self) -> str:
        stem = self.image_id.rsplit(".", 1)[0]
        return f"{stem}_clean_{self.x0}-{self.x1}.jpg"


def clean_spans(masks: np.ndarray, margin: int = MARGIN, min_width: int = MIN_WIDTH) -> list[tuple[int, int]]:
    """(x0, x1) column spans at least `min_width` wide that are `margin` px or more from every mask pixel.
    `masks` is (4, H, W) or (H, W) bool."""
    if margin < 0 or min_width < 1:
        raise ValueError(f"margin must be >= 0 and min_width >= 1, got {margin}, {min_width}")
    touched = np.asarray(masks, dtype=bool)
    touched = touched.reshape(-1, touched.shape[-1]).any(axis=0)
    width = touched.size
    # near[x]: some marked column within [x - margin, x + margin] (a window sum over a cumulative count)
    counts = np.concatenate([[0], np.cumsum(touched)])
    x = np.arange(width)
    near = counts[np.minimum(x + margin + 1, width)] - counts[np.maximum(x - margin, 0)] > 0
    spans, start = [], None
    for x, bad in enumerate(np.append(near, True)):
        if not bad and start is None:
            start = x
        elif bad and start is not None:
            if x - start >= min_width:
                spans.append((start, min(x, width)))
            start = None
    return spans


def mirror_to_width(strip: np.ndarray, width: int = IMAGE_SHAPE[1]) -> np.ndarray:
    """A (H, w) strip mirrored out to (H, width); a strip wider than `width` is cut to its middle."""
    w = strip.shape[1]
    if w >= width:
        left = (w - width) // 2
        return np.ascontiguousarray(strip[:, left:left + width])
    return np.pad(strip, ((0, 0), (0, width - w)), mode="symmetric")


def span_frame(image: np.ndarray, x0: int, x1: int, min_width: int = MIN_WIDTH,
               steel: np.ndarray | None = None) -> np.ndarray | None:
    """The full-width frame of the clean span [x0, x1) of `image`: its steel mirrored out, any out-of-strip band
    in it kept once at its side (left when the band lies left of the steel); None when the span holds less
    than `min_width` columns of steel. `steel`: the image's steel_columns, when the caller has them."""
    width = image.shape[1]
    steel = (steel_columns(image) if steel is None else steel)[x0:x1]
    if steel.all():
        return mirror_to_width(image[:, x0:x1], width)
    run = widest_run(steel)  # a span holds one strip edge at most in practice
    if run is None or run[1] - run[0] < min_width:
        return None
    s0, s1 = x0 + run[0], x0 + run[1]
    left, right = image[:, x0:s0], image[:, s1:x1]  # band (and its soft edge) beside the steel, if any
    band = left if left.shape[1] >= right.shape[1] else right
    steel_frame = mirror_to_width(image[:, s0:s1], width - band.shape[1])
    parts = [band, steel_frame] if band is left else [steel_frame, band]
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def clean_frames(items: Iterable[tuple[str, np.ndarray, dict[int, np.ndarray]]], margin: int = MARGIN,
                 min_width: int = MIN_WIDTH) -> Iterator[tuple[CleanSpan, np.ndarray]]:
    """One full-size clean frame per clean span of each (image id, grey image, {class: mask}) item
    (data.realism.dataset_items gives those for a Kaggle-layout dataset); spans with too little steel are
    skipped (span_frame)."""
    for image_id, image, masks in items:
        stacked = np.stack(list(masks.values())) if masks else np.zeros((1, *image.shape), dtype=bool)
        steel = steel_columns(image)
        for x0, x1 in clean_spans(stacked, margin, min_width):
            frame = span_frame(image, x0, x1, min_width, steel)
            if frame is not None:
                yield CleanSpan(image_id, x0, x1), frame
