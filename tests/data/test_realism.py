"""The realism statistics: what they measure on constructed images, the KS distance, the class-mix matching,
the classifier, and the real sample's floor against itself."""

import cv2
import numpy as np
import pandas as pd
import pytest

from steelinspect.data import realism
from steelinspect.data.synth import render


def _noise(seed, shape=(256, 1600), level=100.0, sigma=8.0):
    return np.random.default_rng(seed).normal(level, sigma, shape)


def _u8(image):
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def test_streaks_along_the_strip_raise_the_horizontal_gradient_energy():
    base = _noise(0)
    vertical = base + 20 * (np.arange(1600) % 8 < 4)[None, :]  # stripes down the image
    horizontal = base + 20 * (np.arange(256) % 8 < 4)[:, None]
    plain, v, h = (realism.image_stats(_u8(x)) for x in (base, vertical, horizontal))
    assert 0.8 < plain["grad_ratio_hv"] < 1.25  # isotropic noise
    assert v["grad_ratio_hv"] > 1.5 > 0.67 > h["grad_ratio_hv"]
    assert v["grad_h"] > plain["grad_h"] and abs(v["grad_v"] - plain["grad_v"]) < 0.5
    assert v["column_profile"] > 0.05 > plain["column_profile"] and h["row_profile"] > 0.05


def test_brightness_texture_and_marks_are_measured_on_the_steel_only():
    image = _noise(1, level=120, sigma=5)
    stats = realism.image_stats(_u8(image))
    assert abs(stats["brightness_mean"] - 120) < 0.5 and abs(stats["brightness_std"] - 5) < 0.3
    assert stats["band_fraction"] == 0 and stats["dark_marks"] < 0.01
    banded = image.copy()
    banded[:, 1200:] = 3  # out-of-strip black band on the right quarter
    with_band = realism.image_stats(_u8(banded))
    assert 24 < with_band["band_fraction"] < 27
    assert abs(with_band["brightness_mean"] - 120) < 0.5 and abs(with_band["brightness_std"] - 5) < 0.3
    marked = image.copy()
    marked[100:110, 200:300] -= 60  # a dark mark
    assert realism.image_stats(_u8(marked))["dark_marks"] > 0.2
    brighter = realism.image_stats(_u8(image * 1.5))
    assert abs(brighter["fine_texture"] - stats["fine_texture"]) < 0.003  # relative to the brightness


def test_mask_statistics_of_constructed_masks():
    image = _noise(2, level=120, sigma=4)
    mask = np.zeros((256, 1600), bool)
    mask[20:220, 400:420] = True  # a tall thin bar
    mask[50:70, 1000:1060] = True  # and a wide flat blob
    image[mask] -= 40
    stats = realism.mask_stats(_u8(image), mask)
    assert stats["components"] == 2
    assert abs(stats["elongation"] - np.log2(200 / 20)) < 1e-9  # the largest part is the bar
    assert abs(stats["area"] - 100 * (200 * 20 + 20 * 60) / (256 * 1600)) < 1e-9
    assert stats["contrast_mean"] < -0.25
    assert 0.8 < stats["contrast_texture"] < 1.25  # same noise inside and around
    assert np.isnan(realism.mask_stats(_u8(image), np.zeros_like(mask))["area"])


def test_line_contrast_sees_thin_lines_not_broad_bands():
    image = _noise(4, level=120, sigma=2)
    mask = np.zeros((256, 1600), bool)
    mask[:, 400:430] = True
    lined = image.copy()
    lined[:, 414:416] *= 0.7  # a crack two columns wide, 30% darker than the steel beside it
    banded = image.copy()
    banded[:, 380:450] *= 0.7  # as dark, but as wide as the mask and more: no line within it
    assert abs(realism.line_contrast(_u8(lined), mask) - 0.3) < 0.03
    assert realism.line_contrast(_u8(banded), mask) < 0.05
    assert realism.line_contrast(_u8(image), mask) < 0.05
    lined[:, 800:802] *= 0.5  # a darker line outside the mask does not count
    assert abs(realism.line_contrast(_u8(lined), mask) - 0.3) < 0.03
    short = np.zeros_like(mask)
    short[:10, 400:430] = True  # no window holds 16 rows of it
    assert np.isnan(realism.line_contrast(_u8(lined), short))
    assert abs(realism.mask_stats(_u8(lined), mask)["line_contrast"] - 0.3) < 0.03


def test_ks_distance():
    x = np.random.default_rng(0).normal(size=200)
    assert realism.ks_distance(x, x) == 0
    assert realism.ks_distance(x, x + 100) == 1
    assert realism.ks_distance([1, 2, np.nan], [1, 2]) == 0
    assert np.isnan(realism.ks_distance([], [1.0]))
    a, b = np.random.default_rng(1).normal(size=(2, 400))
    assert realism.ks_distance(a, b) < 0.12 < realism.ks_distance(a, b + 0.5)


def test_matching_mix_follows_the_target_proportions():
    target = [(3,)] * 6 + [(4,)] * 3 + [(3, 4)] * 1
    sets = [(), (3,), (4,), (3, 4), (1,)] * 40
    chosen = realism.matching_mix(target, 20, lambda i: sets[i], limit=len(sets))
    picked = [sets[i] for i in chosen]
    assert chosen == sorted(chosen)
    assert picked.count((3,)) == 12 and picked.count((4,)) == 6 and picked.count((3, 4)) == 2 and len(picked) == 20


def test_classifier_tells_different_sets_apart_and_not_alike_ones():
    rng = np.random.default_rng(0)
    a = pd.DataFrame(rng.normal(size=(30, 4)), columns=list("wxyz"))
    same = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("wxyz"))
    shifted = same + [2.0, 0, 0, 0]
    assert realism.classifier_auc(a, shifted, list("wxyz"))["logistic"] > 0.9
    assert max(realism.classifier_auc(a, same, list("wxyz")).values()) < 0.75


def test_synthetic_statistics_are_finite():
    items = []
    for index in range(4):
        image, masks = render(0, index)
        items.append((str(index), image, masks))
    stats = realism.collect(items)
    assert len(stats.images) == 4
    assert np.isfinite(stats.images[list(realism.IMAGE_STATS)].to_numpy(float)).all()
    assert len(stats.masks) == sum(len(m) for _, _, m in items)


def test_real_sample_against_itself(real_sample):
    real = realism.collect(realism.dataset_items(real_sample))
    assert len(real.images) == 30 and len(real.masks) == 40
    table = realism.compare_columns(real.images, real.images, list(realism.IMAGE_STATS), splits=10)
    assert (table.ks == 0).all()  # a set against itself
    assert table.floor.between(0.1, 0.6).all()  # two halves of 15 images differ, but not wholly
    # What the issue found by eye: the real plates' light and texture spread wide, streaks balanced.
    assert real.images.brightness_std.median() > 25
    assert 0.5 < real.images.grad_ratio_hv.median() < 1.2
    three = real.masks[real.masks.ClassId == 3]
    assert three.elongation.median() > 1  # class 3 bands run along the strip
    four = real.masks[real.masks.ClassId == 4]
    assert three.line_contrast.median() > 2 * four.line_contrast.median()  # scratch lines; scabs have none


def test_compare_reports_every_statistic(real_sample):
    names = sorted(realism.dataset_class_sets(real_sample))
    real = realism.collect(realism.dataset_items(real_sample, names[:12]))
    synth = realism.collect((str(i), *render(1, i)) for i in range(12))
    result = realism.compare(real, synth, splits=5)
    assert list(result.images.statistic) == list(realism.IMAGE_STATS)
    assert set(result.mean_ks) == {"ks", "ks_matched", "floor"}
    assert all(0 <= v <= 1 for v in [*result.auc.values(), *result.patch_auc.values()])
    assert len(real.patches) == 12 * realism.PATCHES_PER_IMAGE
    assert "image_stats" in result.to_dict()


def test_rejects_a_folder_that_is_not_a_dataset(tmp_path):
    from steelinspect.errors import SteelInspectError

    with pytest.raises(SteelInspectError):
        realism.dataset_class_sets(tmp_path)


def test_patches_are_seeded_steel_squares():
    image = _u8(_noise(3, level=120, sigma=5))
    image[:, 1000:] = 2  # band: patches come from the steel only
    a, b = realism.patch_stats(image, seed=7), realism.patch_stats(image, seed=7)
    assert len(a) == realism.PATCHES_PER_IMAGE and a == b
    assert all(abs(row["mean"] - 120) < 3 and set(row) == set(realism.PATCH_STATS) for row in a)
    assert realism.patch_stats(np.full((256, 1600), 2, np.uint8), seed=0) == []  # all band
    striped = image.astype(float) + 20 * (np.arange(1600) % 8 < 4)[None, :]
    row = realism.patch_stats(_u8(striped), seed=7)[0]
    assert row["grad_h"] > 1.5 * row["grad_v"]
