import gc
import time

import pytest

from steelinspect import rle
from steelinspect.data.master import build_master, read_master, write_master
from steelinspect.errors import DataError, LabelError
from tests.data.fixtures import make_dataset


def test_master_table(tmp_path):
    master = build_master(make_dataset(tmp_path / "d", n_images=4))
    assert master.ImageId.tolist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert master.Defect.tolist() == [True, True, False, False]
    assert master.Defect_no.tolist() == [1, 2, 0, 0]
    assert master.ClassIds.tolist() == [[3], [1, 4], [], []]
    assert master.Area_3.tolist() == [50 * 200, 0, 0, 0]
    assert master.loc[1, "Area_1"] == 400 and master.loc[1, "Area_4"] == 100 * 300
    assert master.EncodedPixels_2.tolist() == ["", "", "", ""]


def test_master_csv_round_trip(tmp_path):
    master = build_master(make_dataset(tmp_path / "d"))
    write_master(master, tmp_path / "m.csv")
    back = read_master(tmp_path / "m.csv")
    assert back.ClassIds.tolist() == master.ClassIds.tolist()
    assert back.Defect.tolist() == master.Defect.tolist()
    assert back.EncodedPixels_3.tolist() == master.EncodedPixels_3.tolist()


def test_master_refuses_label_without_image(tmp_path):
    root = make_dataset(tmp_path / "d", n_images=1)  # b.jpg is labelled but absent
    with pytest.raises(DataError, match="image b.jpg is not in train_images"):
        build_master(root)


def test_master_refuses_missing_layout(tmp_path):
    with pytest.raises(LabelError, match="data folder not found"):
        build_master(tmp_path / "none")
    (tmp_path / "x").mkdir()
    with pytest.raises(LabelError, match="no train.csv"):
        build_master(tmp_path / "x")


def test_real_master(real_sample):
    master = build_master(real_sample)
    assert len(master) == 30 and master.Defect.all()
    assert (master.Defect_no == 2).sum() == 10
    assert int(master.Defect_no.sum()) == 40
    # Areas from run lengths agree with decoded pixel counts.
    for r in master.head(5).itertuples():
        for c in (1, 2, 3, 4):
            text = getattr(r, f"EncodedPixels_{c}")
            assert getattr(r, f"Area_{c}") == int(rle.decode(text).sum())


@pytest.mark.parametrize("text", ["2 9223372036854775807", "100000000000000000000 5"])
def test_an_rle_past_int64_is_a_malformed_row(tmp_path, text):
    from steelinspect.data.check import check_dataset

    root = make_dataset(tmp_path / "d", rows=[("a.jpg", 3, "1 5"), ("b.jpg", 1, text)])
    with pytest.raises(DataError) as caught:
        build_master(root)
    assert [(p.kind, p.row) for p in caught.value.problems] == [("bad_rle", 3)]
    assert "past the 256x1600 image" in str(caught.value) or "longer than the 256x1600 image" in str(caught.value)
    assert [(p.kind, p.row) for p in check_dataset(root, workers=1).problems] == [("bad_rle", 3)]


def _labels(root, rows) -> None:
    (root / "train.csv").write_text("ImageId,ClassId,EncodedPixels\n" + "".join(f"{i},{c},{r}\n" for i, c, r in rows))


def _master_cpu_seconds(root) -> tuple[float, DataError]:
    # CPU time of this process, not wall time: other jobs on a loaded machine barely move it. The garbage collector
    # is paused: its passes scale with whatever earlier tests left on the heap, not with this call.
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        with pytest.raises(DataError) as caught:
            build_master(root)
        return time.process_time() - start, caught.value
    finally:
        gc.enable()


def test_duplicate_rows_are_found_in_linear_time(tmp_path):
    root = make_dataset(tmp_path / "d", n_images=24)
    names = [f"{chr(97 + i)}.jpg" for i in range(24)]

    def rows(n):  # 24 images x 4 classes, then the same 96 (image, class) pairs over and over
        return [(names[i % 24], 1 + (i // 24) % 4, "1 5") for i in range(n)]

    _labels(root, rows(20_000))
    small = min(_master_cpu_seconds(root)[0] for _ in range(2))
    _labels(root, rows(80_000))
    large = min(_master_cpu_seconds(root)[0] for _ in range(2))
    assert large / max(small, 1e-3) < 8, (small, large)  # 4x the rows: about 4x the time, not 16x

    _labels(root, rows(100_000))
    seconds, error = _master_cpu_seconds(root)
    assert seconds < 20, seconds
    assert len(error.problems) == 100_000 - 96 and {p.kind for p in error.problems} == {"duplicate"}
    first = error.problems[0]
    assert (first.row, first.problem) == (98, "duplicate row for image a.jpg class 1 (first at row 2)")

    # Another shape: 100k rows, each naming its own (absent) image.
    _labels(root, [(f"x{i}.jpg", 1 + i % 4, "1 5") for i in range(100_000)])
    seconds, error = _master_cpu_seconds(root)
    assert seconds < 20 and len(error.problems) == 100_000, seconds
