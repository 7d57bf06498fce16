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
