import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from steelinspect.metrics.classification import (
    at_chance_warning,
    best_f1_threshold,
    binary_metrics,
    break_even_threshold,
    chance_f1,
    class_threshold,
    classes_at_chance,
    multiclass_metrics,
    multilabel_metrics,
)


def test_binary_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.4 + rng.random(200) * 0.6, 0, 1)
    m = binary_metrics(y, p, threshold=0.5, loss=0.3)
    pred = p >= 0.5
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert np.array(m["confusion_matrix"]).sum() == 200 and m["loss"] == 0.3
    assert 0.5 < m["roc_auc"] <= 1


def test_whole_split_is_not_a_batch_average():
    # Two batches: F1 of the whole split differs from the mean of per-batch F1 (the capstone's Keras metric).
    y = np.array([1, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([1, 1, 1, 0, 1, 1, 0, 0], dtype=float)
    whole = binary_metrics(y, p)["f1"]
    batches = np.mean([f1_score(y[:4], p[:4] >= 0.5), f1_score(y[4:], p[4:] >= 0.5)])
    assert whole == pytest.approx(f1_score(y, p >= 0.5)) and whole != pytest.approx(batches)


def test_multiclass_macro_and_confusion():
    y = np.array([0, 1, 2, 3, 2, 2])
    probs = np.eye(4)[[0, 1, 2, 2, 2, 3]]
    m = multiclass_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert m["confusion_matrix"][3][2] == 1 and m["per_class"]["4"]["support"] == 1


def test_multilabel_macro_over_present_classes():
    y = np.array([[1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    probs = np.array([[0.9, 0.1, 0.8, 0.2], [0.2, 0.1, 0.7, 0.6], [0.6, 0.2, 0.1, 0.9]])
    m = multilabel_metrics(y, probs, [0.5] * 4)
    pred = probs >= 0.5
    # Class 2 never occurs in truth or prediction, so it is left out of the macro average.
    assert m["f1"] == pytest.approx(f1_score(y[:, [0, 2, 3]], pred[:, [0, 2, 3]], average="macro"))
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert len(m["confusion_matrix"]) == 4 and m["per_class"]["2"]["roc_auc"] is None


def test_chance_f1_is_naming_the_class_on_every_image():
    y = np.zeros((20, 4), int)
    y[:10, 0] = 1  # class 1 on half the images, learnt
    y[:2, 1] = 1  # class 2 on two: named on every image, as a model that cannot tell it does
    y[5:8, 2] = 1  # class 3 on three, never named
    probs = np.where(y == 1, 0.9, 0.1)
    probs[:, 1] = 0.6
    probs[:, 2] = 0.1
    m = multilabel_metrics(y, probs, [0.5] * 4)
    everywhere = f1_score(y[:, 1], np.ones(20, int))
    assert m["per_class"]["2"]["f1"] == pytest.approx(everywhere) == pytest.approx(chance_f1(2, 20)) == 4 / 22
    assert m["per_class"]["1"]["chance_f1"] == pytest.approx(2 * 10 / 30) and m["per_class"]["1"]["f1"] == 1.0
    assert m["per_class"]["4"]["chance_f1"] == 0.0 and chance_f1(0, 20) == 0.0
    assert classes_at_chance(m) == ["2", "3"]  # class 4 never occurs: nothing to learn, not listed
    assert at_chance_warning(["2", "3"]) == "classes 2, 3 score no better than naming each on every image"
    assert at_chance_warning(["2"], "test image") == "class 2 scores no better than naming it on every test image"
    assert classes_at_chance(binary_metrics(y[:, 0], probs[:, 0])) == []  # step 1 has no per-class record


def test_a_class_with_few_validation_images_breaks_even_instead_of_chasing_them():
    # 3 positives among 60: the F1-optimal threshold drops to the one positive the model ranked low, passing 20
    # negatives with it; breaking even calls as many images as hold the class.
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.4, 60)
    y = np.zeros(60, int)
    y[[0, 1, 2]] = 1
    p[[0, 1]] = [0.6, 0.55]  # two ranked high ...
    p[2] = 0.07  # ... and one low
    ranked = np.sort(p)[::-1]
    assert break_even_threshold(y, p) == pytest.approx((ranked[2] + ranked[3]) / 2)
    assert class_threshold(y, p) == break_even_threshold(y, p) and (p >= class_threshold(y, p)).sum() == 3
    assert best_f1_threshold(y, p) != class_threshold(y, p)
    # Five or more: F1-optimal as before; none: the default.
    y5 = np.r_[np.ones(5, int), np.zeros(55, int)]
    assert class_threshold(y5, p) == best_f1_threshold(y5, p)
    assert class_threshold(np.zeros(60, int), p) == 0.5
    with pytest.raises(ValueError, match="some but not all"):
        break_even_threshold(np.ones(4, int), p[:4])


def test_threshold_tuning_finds_the_gap():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    t = best_f1_threshold(y, p)
    assert 0.3 < t <= 0.35
    assert binary_metrics(y, p, t)["f1"] == 1.0
