"""Preprocess: resize + normalisation shared by training and every inference path."""

import numpy as np
import pytest

from steelinspect.data.transforms import Preprocess, parse_size
from steelinspect.errors import ConfigError


def plate(seed=0, shape=(64, 128)):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(80, 15, shape), 0, 255).astype(np.uint8)


def test_image_norm_standardises_each_image_and_ignores_plate_brightness():
    gray = plate()
    x = Preprocess(64, 128).normalize(gray)
    assert x.shape == (1, 64, 128) and x.dtype == np.float32
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-3
    # The same plate, brighter and with more contrast (no clipping): the model sees the same input.
    brighter = gray.astype(np.float32) * 1.3 + 20
    assert brighter.max() < 255
    brighter = brighter.round().astype(np.uint8)
    assert np.abs(Preprocess(64, 128).normalize(brighter) - x).max() < 0.05
    flat = Preprocess(64, 128).normalize(np.full((64, 128), 77, np.uint8))
    assert np.isfinite(flat).all() and not flat.any()


def test_fixed_norm_and_resize():
    gray = plate(1, (256, 1600))
    prep = Preprocess(64, 128, norm="fixed")
    x = prep(gray)
    assert x.shape == (1, 64, 128)
    small = prep.normalize(np.full((64, 128), 255, np.uint8))
    assert np.allclose(small, (1 - 0.449) / 0.226)


def test_dict_round_trip_and_runs_made_before_image_norm():
    prep = Preprocess(128, 512)
    assert Preprocess.from_dict(prep.to_dict()) == prep
    old = {"height": 128, "width": 512, "mean": 0.449, "std": 0.226}  # model.pt written before "norm" existed
    assert Preprocess.from_dict(old).norm == "fixed"
    with pytest.raises(ValueError, match="unknown normalisation"):
        Preprocess(norm="minmax")


def test_parse_size():
    assert parse_size("256x512") == (256, 512)
    for bad in ("256", "axb", "250x512", "0x512"):
        with pytest.raises(ConfigError):
            parse_size(bad)
