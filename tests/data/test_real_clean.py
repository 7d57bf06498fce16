"""Clean frames cut from the real sample's defect-free columns (issue 13's specificity check)."""

from __future__ import annotations

import numpy as np
import pytest

from steelinspect.data.real_clean import clean_frames, clean_spans, mirror_to_width, span_frame


def test_spans_keep_the_margin_from_every_mask_column():
    masks = np.zeros((4, 8, 100), dtype=bool)
    masks[0, 3, 40] = True
    masks[3, 0:8, 70:72] = True
    assert clean_spans(masks, margin=5, min_width=1) == [(0, 35), (46, 65), (77, 100)]
    assert clean_spans(masks, margin=5, min_width=20) == [(0, 35), (77, 100)]
    assert clean_spans(np.zeros((8, 50), dtype=bool), margin=5, min_width=10) == [(0, 50)]
    assert clean_spans(np.ones((8, 50), dtype=bool), margin=0, min_width=1) == []


def test_mirroring_repeats_the_strip_without_seams():
    strip = np.arange(3 * 7, dtype=np.uint8).reshape(3, 7)
    frame = mirror_to_width(strip, 30)
    assert frame.shape == (3, 30)
    np.testing.assert_array_equal(frame[:, :7], strip)
    np.testing.assert_array_equal(frame[:, 7:14], strip[:, ::-1])  # mirrored, so the seam column repeats
    np.testing.assert_array_equal(frame[:, 14:21], strip)
    assert mirror_to_width(np.zeros((2, 40), np.uint8), 30).shape == (2, 30)


def test_real_sample_frames_come_only_from_unmarked_columns(real_sample):
    from steelinspect.data.realism import dataset_items

    items = list(dataset_items(real_sample))
    frames = list(clean_frames(items, margin=32, min_width=160))
    assert frames, "the real sample should have defect-free spans"
    by_id = {image_id: (image, masks) for image_id, image, masks in items}
    for span, frame in frames:
        image, masks = by_id[span.image_id]
        assert frame.shape == image.shape and frame.dtype == image.dtype
        marked = np.flatnonzero(np.stack(list(masks.values())).any(axis=(0, 1)))
        assert np.min(np.abs(marked[:, None] - np.arange(span.x0, span.x1)[None])) >= 32
        # every column of the frame is a column of the clean span
        source = {image[:, x].tobytes() for x in range(span.x0, span.x1)}
        assert all(frame[:, x].tobytes() in source for x in range(0, frame.shape[1], 97))


def test_a_span_reaching_into_the_band_keeps_the_band_once_at_its_side():
    image = np.full((8, 100), 120, np.uint8)
    image[:, 70:] = 3  # out-of-strip band at the right
    frame = span_frame(image, 10, 100, min_width=20)
    assert frame.shape == image.shape
    # steel columns only left of the band, and the band's columns once at the right (its soft edge counted in)
    dark = np.flatnonzero(np.median(frame, axis=0) < 25)
    assert dark.min() > 50 and dark.max() == 99 and len(dark) == 30
    # too little steel for a frame: none
    assert span_frame(image, 60, 100, min_width=20) is None
    # an all-steel span is mirrored as before
    np.testing.assert_array_equal(span_frame(image, 0, 40, min_width=20), mirror_to_width(image[:, :40], 100))
    left = image[:, ::-1].copy()  # the band at the left stays at the left
    assert np.median(span_frame(left, 0, 90, min_width=20)[:, :30]) < 25
