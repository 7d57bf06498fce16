"""The balanced training sampler: equal class exposure on a skewed label table, seeded, sharded like EpochSampler."""

import cv2
import numpy as np

from steelinspect.data.dataset import Augment, EpochSampler, ImageDataset
from steelinspect.data.sampling import BalancedSampler, balanced_weights, make_sampler, number_repeats
from steelinspect.data.transforms import Preprocess

# A skewed multi-label table like the real defect images: class 3 dominant, class 2 rare, a few pairs.
COMBOS = {(3,): 400, (1,): 70, (4,): 45, (3, 4): 25, (2,): 15, (1, 3): 8, (1, 2): 4}


def skewed_targets() -> np.ndarray:
    rows = [combo for combo, n in COMBOS.items() for _ in range(n)]
    out = np.zeros((len(rows), 4), dtype=np.float32)
    for i, combo in enumerate(rows):
        out[i, [c - 1 for c in combo]] = 1
    return np.random.default_rng(0).permutation(out)


def class_counts(targets: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    return targets[np.asarray(drawn) % len(targets)].sum(axis=0)


def test_balanced_draws_see_every_class_about_equally_often():
    targets = skewed_targets()
    natural = class_counts(targets, EpochSampler(len(targets), 16, 0, True).order())
    assert natural.max() / natural.min() > 15  # class 3 against class 2
    sampler = BalancedSampler(balanced_weights(targets), 16, seed=0)
    counts = np.zeros(4)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(targets)  # the epoch keeps its length
        counts += class_counts(targets, drawn)
    assert counts.max() / counts.min() < 1.6, counts
    # The expectation itself: each class's draw share within 1.5x of every other's.
    exposure = balanced_weights(targets) @ targets
    assert exposure.max() / exposure.min() < 1.5, exposure


def test_clean_images_form_their_own_group():
    targets = np.array([[0.0]] * 90 + [[1.0]] * 10)  # step 1: 90 clean, 10 defect
    weights = balanced_weights(targets)
    assert np.isclose(weights[targets[:, 0] == 1].sum(), 0.5) and np.isclose(weights.sum(), 1)
    labels = np.array([0] * 50 + [1] * 5 + [2] * 45)  # the softmax head's class indices
    assert np.allclose([balanced_weights(labels)[labels == c].sum() for c in range(3)], 1 / 3)


def test_draws_are_fixed_by_seed_and_epoch():
    weights = balanced_weights(skewed_targets())
    a, b, c = (BalancedSampler(weights, 16, seed) for seed in (3, 3, 4))
    assert list(a) == list(b) and list(a) != list(c)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(make_sampler("natural", skewed_targets(), 16, 3)) == list(EpochSampler(len(weights), 16, 3, True))


def test_repeats_are_numbered_so_each_draw_is_distinct():
    drawn = np.array([4, 1, 4, 4, 0, 1])
    numbered = number_repeats(drawn, 5)
    assert numbered.tolist() == [4, 1, 9, 14, 0, 6]
    assert (numbered % 5 == drawn).all()
    order = BalancedSampler(balanced_weights(skewed_targets()), 16, 0).order()
    assert len(set(order.tolist())) == len(order)  # every draw of the epoch has its own number


def test_shards_split_every_global_batch_without_overlap():
    targets = skewed_targets()[:560]  # 35 global batches of 16: no padding
    weights = balanced_weights(targets)
    whole = list(BalancedSampler(weights, 16, 7))
    ranks = [list(BalancedSampler(weights, 16, 7, rank, 2)) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 280
    assert not set(ranks[0]) & set(ranks[1])
    for step in range(35):  # each global batch is the same set of draws whatever the number of processes
        together = ranks[0][step * 8 : (step + 1) * 8] + ranks[1][step * 8 : (step + 1) * 8]
        assert together == whole[step * 16 : (step + 1) * 16]


def test_a_repeated_draw_is_the_same_image_with_its_own_augmentation(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (64, 128), dtype=np.uint8))
    targets = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    dataset = ImageDataset(tmp_path, ["a.jpg", "b.jpg"], targets, Preprocess(32, 64), Augment(), seed=0)
    x0, y0, i0 = dataset[1]
    x1, y1, i1 = dataset[1 + 2]  # the second draw of image 1
    assert i0 == i1 == 1 and y0.tolist() == y1.tolist() == [0, 1, 0, 0]
    assert not np.allclose(x0.numpy(), x1.numpy())
    plain = ImageDataset(tmp_path, ["a.jpg", "b.jpg"], targets, Preprocess(32, 64), None, seed=0)
    assert np.allclose(plain[1][0].numpy(), plain[3][0].numpy())
