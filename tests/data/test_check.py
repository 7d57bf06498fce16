
import numpy as np

from steelinspect.data.check import check_dataset
from tests.data.fixtures import box_rle, make_dataset, write_image


def kinds(report):
    return sorted(p.kind for p in report.problems)


def test_clean_dataset_passes(tmp_path):
    report = check_dataset(make_dataset(tmp_path / "d"))
    assert report.ok and report.images == 4 and report.label_rows == 3 and report.label_format == "new"


def test_real_sample_passes(real_sample):
    report = check_dataset(real_sample)
    assert report.ok and report.images == 30 and report.label_rows == 40


def test_every_problem_in_one_pass(tmp_path):
    rows = [
        ("a.jpg", 3, box_rle(10, 100, 50, 200)),
        ("a.jpg", 3, box_rle(10, 100, 50, 200)),  # duplicate
        ("b.jpg", 1, box_rle(0, 0, 20, 20)),
        ("b.jpg", 4, box_rle(10, 10, 20, 20)),  # overlaps class 1
        ("c.jpg", 2, "5 10 1"),  # malformed RLE
        ("c.jpg", 7, box_rle(0, 0, 5, 5)),  # class outside 1-4
        ("zzz.jpg", 1, box_rle(0, 0, 5, 5)),  # image missing
    ]
    root = make_dataset(tmp_path / "d", n_images=6, rows=rows)
    (root / "train_images" / "d.jpg").write_bytes(b"this is not a jpeg")
    write_image(root / "train_images" / "e.jpg", shape=(256, 800))
    data = (root / "train_images" / "f.jpg").read_bytes()
    (root / "train_images" / "f.jpg").write_bytes(data[:-300])

    report = check_dataset(root)
    assert not report.ok
    assert kinds(report) == sorted(
        ["duplicate", "overlap", "bad_rle", "bad_class", "missing_image", "bad_image", "bad_image", "bad_image"]
    )
    messages = {p.kind: str(p) for p in report.problems}
    labels = str(root / "train.csv")
    assert messages["duplicate"].startswith(f"{labels}, row 3: duplicate row for image a.jpg class 3")
    assert messages["overlap"] == f"{labels}, row 5: masks of classes 1 and 4 of b.jpg overlap"
    assert messages["bad_rle"].startswith(f"{labels}, row 6: EncodedPixels of c.jpg class 2: odd number of tokens")
    assert messages["bad_class"] == f"{labels}, row 7: ClassId 7 is outside 1-4"
    assert messages["missing_image"] == f"{labels}, row 8: image zzz.jpg is not in train_images/"
    bad_images = {p.file.rsplit("/", 1)[-1]: p.problem for p in report.problems if p.kind == "bad_image"}
    assert "not a readable image" in bad_images["d.jpg"]
    assert bad_images["e.jpg"] == "image is 800x256, expected 1600x256 (width x height)"
    assert "truncated" in bad_images["f.jpg"]


def test_unknown_column_and_original_format(tmp_path):
    root = make_dataset(tmp_path / "d", rows=[], header="ImageId_ClassId,EncodedPixels,Note")
    (root / "train.csv").write_text("ImageId_ClassId,EncodedPixels,Note\na.jpg_1,,x\n")
    report = check_dataset(root)
    assert report.label_format == "original"
    assert [(p.kind, p.row) for p in report.problems] == [("unknown_column", 1)]


def test_overlap_detection_against_decoded_masks(tmp_path):
    from steelinspect import rle
    from steelinspect.data.check import overlapping_classes

    rng = np.random.default_rng(1)
    for _ in range(50):
        masks = rng.random((4, 32, 8)) > 0.93
        runs = {c + 1: rle.parse(rle.encode(masks[c]), (32, 8)) for c in range(4) if masks[c].any()}
        truly = (masks.sum(0) > 1).any()
        assert (overlapping_classes(runs) is not None) == truly
