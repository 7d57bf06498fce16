import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from steelinspect import rle
from steelinspect.errors import RLEError
from tests.data.kaggle_rle import kernel_decode, kernel_encode


def test_numbering_is_one_based_column_major():
    mask = rle.decode("1 3 258 1", shape=(256, 4))
    assert mask[0:3, 0].all() and mask.sum() == 4
    assert mask[1, 1]  # pixel 258 = row 1 of column 1 (0-based)
    assert rle.encode(mask) == "1 3 258 1"


def test_empty_string_is_empty_mask():
    assert not rle.decode("").any()
    assert rle.encode(np.zeros((256, 1600), bool)) == ""
    assert rle.area("") == 0


@pytest.mark.parametrize(
    "bad, words",
    [
        ("1 2 3", "odd number of tokens"),
        ("1 x", "'x' is not an integer"),
        ("1.5 2", "not an integer"),
        ("0 5", "numbered from 1"),
        ("-3 5", "numbered from 1"),
        ("10 0", "at least 1"),
        ("409600 2", "past the 256x1600 image"),
        ("100 5 50 2", "unsorted"),
        ("100 5 102 3", "overlapping"),
    ],
)
def test_malformed_rle_says_what_is_wrong(bad, words):
    with pytest.raises(RLEError, match=words):
        rle.decode(bad)


def test_adjacent_runs_are_valid():
    assert rle.decode("1 2 3 2", shape=(4, 1)).all()


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip_mask(mask):
    text = rle.encode(mask)
    assert np.array_equal(rle.decode(text, mask.shape), mask)
    assert rle.area(text, mask.shape) == mask.sum()
    assert text == kernel_encode(mask.astype(np.uint8))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), max_size=20))
def test_round_trip_string(pairs):
    # Build a canonical RLE: gaps >= 1 so runs never touch, then string -> mask -> string is identity.
    tokens, pos = [], 0
    for gap, length in pairs:
        start = pos + gap + 1
        tokens += [start, length]
        pos = start + length - 1
    shape = (16, max(1, (pos // 16) + 2))
    text = " ".join(map(str, tokens))
    assert rle.encode(rle.decode(text, shape)) == text


def test_mask_stack_helpers():
    rng = np.random.default_rng(0)
    stack = np.zeros((4, 256, 1600), bool)
    stack[0, 10:50, 100:300] = True
    stack[2, :, 900:910] = rng.random((256, 10)) > 0.5
    rles = rle.build_rles(stack)
    assert rles[1] == "" and rles[3] == ""
    assert np.array_equal(rle.build_mask(rles), stack)
    assert np.array_equal(rle.build_mask({1: rles[0], 3: rles[2]}), stack)
    with pytest.raises(RLEError, match="class id 7"):
        rle.build_mask({7: "1 1"})


def test_real_rows_round_trip_exactly(real_sample):
    rows = pd.read_csv(real_sample / "train.csv")
    assert len(rows) == 40
    for text in rows.EncodedPixels:
        mask = rle.decode(text)
        assert mask.shape == (256, 1600)
        assert np.array_equal(mask, kernel_decode(text).astype(bool))
        assert rle.encode(mask) == text


@pytest.mark.parametrize(
    "bad, words",
    [
        ("2 9223372036854775807", "run 1 has length 9223372036854775807, longer than the 256x1600 image"),
        ("100000000000000000000 5", "run 1 starts at pixel 100000000000000000000, past the 256x1600 image"),
        ("9223372036854775807 1", "run 1 starts at pixel 9223372036854775807, past"),
        ("1 5 409601 1", "run 2 starts at pixel 409601, past"),
        ("1 409601", "run 1 has length 409601, longer than"),
        ("409600 2", "run 1 \\(409600 2\\) ends at pixel 409601, past"),
        ("-100000000000000000000 5", "run 1 starts at -100000000000000000000: starts are numbered from 1"),
        ("5 -9223372036854775809", "run 1 has length -9223372036854775809: lengths must be at least 1"),
        ("1 " + "9" * 5000, "run 1 has length 999999999999999999999999999999... \\(5000 characters\\), longer"),
        ("1 1_000", "token '1_000' is not an integer"),
        ("1 \u0663", "is not an integer"),  # an Arabic-Indic digit: int() takes it, the format does not
    ],
)
def test_numbers_are_bounded_by_the_image_before_any_arithmetic(bad, words):
    with pytest.raises(RLEError, match=words):
        rle.parse(bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(10**25), 10**25) | st.integers(-3, 40), min_size=2, max_size=8).filter(lambda v: len(v) % 2 == 0))
def test_any_integers_give_valid_runs_or_rle_error(values):
    shape = (4, 8)
    try:
        starts, lengths = rle.parse(" ".join(map(str, values)), shape)
    except RLEError:
        return
    assert (starts >= 0).all() and (lengths >= 1).all() and (starts + lengths <= 32).all()
    assert rle.decode(" ".join(map(str, values)), shape).sum() == lengths.sum()
