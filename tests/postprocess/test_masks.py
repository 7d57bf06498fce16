"""Threshold + minimum component area, gating, and the regions reported per class."""

import numpy as np
import pytest

from steelinspect.errors import ConfigError
from steelinspect.postprocess.masks import PostProcess, remove_small


def probs_with_blobs():
    probs = np.zeros((4, 256, 1600), np.float32)
    probs[0, 10:20, 10:20] = 0.9  # 100 px: small
    probs[0, 100:150, 500:600] = 0.9  # 5000 px: large
    probs[2, 0:40, 0:40] = 0.4  # 1600 px below threshold 0.5
    probs[3, 50:60, 50:60] = 0.8  # 100 px
    return probs


def test_min_area_removes_small_blobs_and_keeps_large():
    pp = PostProcess(thresholds=(0.5,) * 4, min_areas=(600, 600, 1000, 50))
    masks, regions = pp(probs_with_blobs())
    assert masks.shape == (4, 256, 1600) and masks.dtype == bool
    assert not masks[0, 10:20, 10:20].any() and masks[0, 100:150, 500:600].all()
    assert masks[0].sum() == 5000 and regions[0].area == 5000
    assert [(c.x, c.y, c.width, c.height) for c in regions[0].components] == [(500, 100, 100, 50)]
    assert regions[0].boxes_text() == "500 100 100 50"
    assert not masks[2].any() and regions[2].area == 0 and regions[2].boxes_text() == ""
    assert masks[3].sum() == 100 and regions[3].components[0].area == 100


def test_threshold_applies_per_class():
    pp = PostProcess(thresholds=(0.5, 0.5, 0.3, 0.5), min_areas=(0, 0, 0, 0))
    masks, _ = pp(probs_with_blobs())
    assert masks[2].sum() == 1600


def test_uint8_probabilities_are_scaled():
    probs = (probs_with_blobs() * 255).round().astype(np.uint8)
    a, _ = PostProcess(min_areas=(600, 600, 1000, 50))(probs)
    b, _ = PostProcess(min_areas=(600, 600, 1000, 50))(probs_with_blobs())
    assert (a == b).all()


def test_min_area_scales_with_mask_resolution():
    # A 64x400 mask is 1/16 of the full image: 600 px at full size = 37.5 px here.
    probs = np.zeros((4, 64, 400), np.float32)
    probs[0, :5, :8] = 1.0  # 40 px: kept
    probs[1, :5, :7] = 1.0  # 35 px: dropped
    masks, _ = PostProcess(min_areas=(600, 600, 600, 600))(probs)
    assert masks[0].sum() == 40 and masks[1].sum() == 0


def test_gate_drop_and_scale():
    probs = probs_with_blobs()
    base = PostProcess(min_areas=(600, 600, 1000, 50))
    drop = base.with_gate("drop", (0.5, 0.5, 0.5, 0.5))
    masks, _ = drop(probs, class_probs=[0.2, 0.9, 0.9, 0.9])
    assert not masks[0].any() and masks[3].any()
    # Scale: class 4's 100 px blob survives min area 50 at p=1, not at p=0.4 (50/0.4 = 125 px).
    scale = base.with_gate("scale")
    assert scale(probs, class_probs=[1, 1, 1, 1.0])[0][3].any()
    assert not scale(probs, class_probs=[1, 1, 1, 0.4])[0][3].any()
    # Without classifier probabilities the gate does nothing.
    assert (drop(probs)[0] == base(probs)[0]).all()


def test_remove_small_keeps_diagonal_neighbours_together():
    m = np.zeros((10, 10), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # one 8-connected component of 3 px
    kept, comps = remove_small(m, 3)
    assert kept.sum() == 3 and len(comps) == 1


def test_round_trip_and_validation():
    pp = PostProcess(thresholds=(0.4, 0.5, 0.6, 0.7), min_areas=(1, 2, 3, 4), gate="scale")
    assert PostProcess.from_dict(pp.to_dict()) == pp
    with pytest.raises(ConfigError, match="4 values"):
        PostProcess(thresholds=(0.5,))
    with pytest.raises(ConfigError, match="gate"):
        PostProcess(gate="maybe")
    with pytest.raises(ValueError, match=r"\(4, H, W\)"):
        PostProcess()(np.zeros((3, 8, 8)))


def test_sigmoid_of_extreme_logits_is_exact_and_silent():
    import warnings

    from steelinspect.postprocess.activations import sigmoid

    logits = np.array([-1000.0, -89.0, 0.0, 89.0, 1000.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would raise here
        got = sigmoid(logits)
    assert got[0] == got[1] < 1e-37 and got[2] == 0.5 and got[3] == got[4] == 1.0
