"""Kaggle submission files: write, read back in either label format, validate, score."""

import numpy as np
import pytest

from steelinspect import rle
from steelinspect.data.labels import write_labels, read_labels
from steelinspect.errors import DataError
from steelinspect.infer.submission import SubmissionWriter, read_submission, score_submission, write_submission
from tests.data.fixtures import box_rle, make_dataset


def test_write_has_kaggle_columns_and_four_rows_per_image(tmp_path):
    path = tmp_path / "sub.csv"
    n = write_submission(path, [("a.jpg", ["", "1 3", "", ""]), ("b.jpg", [""] * 4)])
    lines = path.read_text().splitlines()
    assert n == 2
    assert lines[0] == "ImageId,EncodedPixels,ClassId"
    assert lines[1:5] == ["a.jpg,,1", "a.jpg,1 3,2", "a.jpg,,3", "a.jpg,,4"]
    assert len(lines) == 9
    sub = read_submission(path)
    assert sub.format == "new" and sub.image_ids == ["a.jpg", "b.jpg"]
    assert sub.masks["a.jpg"] == ["", "1 3", "", ""] and sub.masks["b.jpg"] == [""] * 4


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "sub.csv"
    with pytest.raises(RuntimeError):
        with SubmissionWriter(path) as sub:
            sub.add("a.jpg", [""] * 4)
            raise RuntimeError("crash")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_reads_original_format_with_all_empty_images(tmp_path):
    table = read_labels(make_dataset(tmp_path / "d") / "train.csv")
    path = tmp_path / "orig.csv"
    write_labels(table, path, fmt="original", image_ids=["a.jpg", "b.jpg", "c.jpg"])
    sub = read_submission(path)
    assert sub.format == "original"
    assert sub.image_ids == ["a.jpg", "b.jpg", "c.jpg"]  # c.jpg has only empty rows and is still named
    assert sub.masks["b.jpg"][0] == box_rle(0, 0, 20, 20) and sub.masks["b.jpg"][1] == ""


def test_malformed_rows_are_refused_with_file_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ImageId,EncodedPixels,ClassId\na.jpg,1 2 3,1\na.jpg,,7\na.jpg,,2\n")
    with pytest.raises(DataError) as info:
        read_submission(path)
    err = info.value
    assert err.file == str(path) and err.row == 2 and "odd number of tokens" in str(err)
    assert any(p.row == 3 and "outside 1-4" in p.problem for p in err.problems)


def test_score_against_dataset(tmp_path):
    root = make_dataset(tmp_path / "d")  # a.jpg: class 3 box; b.jpg: classes 1 and 4; c, d clean
    truth = {r.ImageId: r.EncodedPixels for r in read_labels(root / "train.csv").itertuples() if r.ClassId == 3}
    half = np.zeros((256, 1600), bool)
    half[10:60, 100:200] = True  # half of the class-3 box (50x200)
    sub = tmp_path / "sub.csv"
    write_submission(sub, [("a.jpg", ["", "", rle.encode(half), ""]), ("c.jpg", [""] * 4)])
    result = score_submission(sub, root)
    assert result.scored_images == 2 and result.unscored_truth_images == 2
    # 8 pairs: 7 empty-on-empty, class 3 on a.jpg: 2*5000/(5000+10000).
    assert result.report.dice_kaggle == pytest.approx((7 + 2 / 3) / 8)
    assert result.report.dice_empty_baseline == pytest.approx(7 / 8)
    assert rle.area(truth["a.jpg"]) == 10000

    every = score_submission(sub, root, all_images=True)
    assert every.scored_images == 4
    # b.jpg's two masks are missed: 16 pairs, 13 empty-on-empty, 2 zeros, one 2/3.
    assert every.report.dice_kaggle == pytest.approx((13 + 2 / 3) / 16)


def test_score_refuses_unknown_image(tmp_path):
    root = make_dataset(tmp_path / "d")
    sub = tmp_path / "sub.csv"
    write_submission(sub, [("a.jpg", [""] * 4), ("zzz.jpg", [""] * 4)])
    with pytest.raises(DataError, match="zzz.jpg is not in the truth data") as info:
        score_submission(sub, root)
    assert info.value.row == 6
