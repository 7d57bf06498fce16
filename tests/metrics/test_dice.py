"""The Kaggle metric against hand-computed cases, and its RLE path against the mask path."""

import numpy as np
import pytest

from steelinspect import rle
from steelinspect.metrics.dice import DiceCounts, DiceReport, dice_from_counts, dice_masks, kaggle_dice, rle_counts


def box(shape, top, left, h, w):
    m = np.zeros(shape, bool)
    m[top : top + h, left : left + w] = True
    return m


def test_empty_prediction_on_empty_truth_scores_one():
    empty = np.zeros((8, 8), bool)
    assert dice_masks(empty, empty) == 1.0


def test_empty_prediction_on_defect_scores_zero_and_vice_versa():
    empty, defect = np.zeros((8, 8), bool), box((8, 8), 0, 0, 2, 2)
    assert dice_masks(empty, defect) == 0.0
    assert dice_masks(defect, empty) == 0.0


def test_known_overlap():
    pred = box((8, 8), 0, 0, 2, 2)  # 4 pixels
    truth = box((8, 8), 0, 1, 2, 3)  # 6 pixels, 2 shared with pred
    assert dice_masks(pred, truth) == pytest.approx(2 * 2 / (4 + 6))
    assert dice_masks(truth, truth) == 1.0


def test_kaggle_mean_over_every_image_class_pair():
    shape = (2, 4, 8, 8)
    pred, truth = np.zeros(shape, bool), np.zeros(shape, bool)
    truth[0, 2] = box((8, 8), 0, 0, 4, 4)  # 16 px
    pred[0, 2] = box((8, 8), 0, 0, 4, 2)  # 8 px inside -> 2*8/24
    truth[1, 3] = box((8, 8), 0, 0, 1, 1)  # missed -> 0
    pred[1, 0] = box((8, 8), 5, 5, 1, 1)  # false positive on an empty pair -> 0
    expected = (5 * 1.0 + 16 / 24 + 0 + 0) / 8
    assert kaggle_dice(pred, truth) == pytest.approx(expected)

    counts = DiceCounts()
    counts.add_masks(["a", "b"], pred, truth)
    report = counts.report()
    assert report.images == 2
    assert report.dice_kaggle == pytest.approx(expected)
    # Two positive pairs out of 8: an all-empty submission scores 6/8.
    assert report.dice_empty_baseline == pytest.approx(6 / 8)
    by_class = {s.class_id: s for s in report.classes}
    assert by_class[1].dice == pytest.approx(0.5) and by_class[1].dice_positive is None
    assert by_class[1].predicted == 1 and by_class[1].positives == 0
    assert by_class[3].dice == pytest.approx((16 / 24 + 1) / 2)
    assert by_class[3].dice_positive == pytest.approx(16 / 24)
    assert by_class[4].dice_positive == 0.0 and by_class[4].empty_baseline == 0.5
    d = report.to_dict()
    assert set(d) >= {"dice_kaggle", "dice_empty_baseline", "dice_per_class", "dice_positive_per_class"}
    assert d["dice_per_class"]["3"] == pytest.approx(by_class[3].dice)
    # Per-class scores average to the Kaggle score (equal numbers of pairs per class).
    assert np.mean(list(d["dice_per_class"].values())) == pytest.approx(report.dice_kaggle)


def test_rle_counts_match_mask_counts():
    rng = np.random.default_rng(0)
    shape = (16, 40)
    for _ in range(20):
        a = rng.random(shape) < rng.random()
        b = rng.random(shape) < rng.random() * 0.3
        inter, pa, pb = rle_counts(rle.encode(a), rle.encode(b), shape)
        assert (inter, pa, pb) == (int((a & b).sum()), int(a.sum()), int(b.sum()))
    assert rle_counts("", "1 5", shape) == (0, 0, 5)


def test_dice_from_counts_vectorised():
    got = dice_from_counts([0, 2, 0], [0, 4, 3], [0, 6, 0])
    assert got.tolist() == [1.0, 0.4, 0.0]


def test_report_validates_input():
    with pytest.raises(ValueError, match="no images"):
        DiceReport.from_counts(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match="shape"):
        dice_masks(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
