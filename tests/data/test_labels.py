import pandas as pd
import pytest

from steelinspect.data.labels import parse_labels, read_labels, write_labels
from steelinspect.errors import DataError, LabelError


def write(tmp_path, text):
    path = tmp_path / "train.csv"
    path.write_text(text)
    return path


def test_new_format(tmp_path):
    labels = parse_labels(write(tmp_path, "ImageId,ClassId,EncodedPixels\na.jpg,3,1 5\nb.jpg,1,10 2\n"))
    assert labels.format == "new" and not labels.problems
    assert labels.table.to_dict("records") == [
        {"ImageId": "a.jpg", "ClassId": 3, "EncodedPixels": "1 5", "row": 2},
        {"ImageId": "b.jpg", "ClassId": 1, "EncodedPixels": "10 2", "row": 3},
    ]


def test_original_format_drops_empty_rows(tmp_path):
    text = "ImageId_ClassId,EncodedPixels\n" + "".join(
        f"a.jpg_{c},{'1 5' if c == 3 else ''}\n" for c in range(1, 5)
    ) + "".join(f"b.jpg_{c},\n" for c in range(1, 5))
    labels = parse_labels(write(tmp_path, text))
    assert labels.format == "original" and not labels.problems
    assert list(labels.table.itertuples(index=False, name=None)) == [("a.jpg", 3, "1 5", 4)]


def test_both_formats_give_the_same_table(tmp_path):
    table = pd.DataFrame({"ImageId": ["x.jpg", "y.jpg"], "ClassId": [2, 4], "EncodedPixels": ["3 4", "7 1 10 2"]})
    write_labels(table, tmp_path / "new.csv", "new")
    write_labels(table, tmp_path / "orig.csv", "original", image_ids=["x.jpg", "y.jpg", "z.jpg"])
    a, b = read_labels(tmp_path / "new.csv"), read_labels(tmp_path / "orig.csv")
    cols = ["ImageId", "ClassId", "EncodedPixels"]
    assert a[cols].equals(b[cols])
    assert len((tmp_path / "orig.csv").read_text().splitlines()) == 1 + 3 * 4


def test_column_order_does_not_matter(tmp_path):
    # Kaggle's submission order is ImageId,EncodedPixels,ClassId.
    table = read_labels(write(tmp_path, "ImageId,EncodedPixels,ClassId\na.jpg,1 5,2\n"))
    assert table.ClassId.tolist() == [2] and table.EncodedPixels.tolist() == ["1 5"]


@pytest.mark.parametrize(
    "text, row, words",
    [
        ("ImageId,ClassId,EncodedPixels\na.jpg,5,1 5\n", 2, "ClassId 5 is outside 1-4"),
        ("ImageId,ClassId,EncodedPixels\na.jpg,x,1 5\n", 2, "'x' is not an integer"),
        ("ImageId,ClassId,EncodedPixels\na.jpg,1,1 5\na.jpg,1,9 5\n", 3, "duplicate row for image a.jpg class 1 (first at row 2)"),
        ("ImageId,ClassId,EncodedPixels,Extra\na.jpg,1,1 5,z\n", 1, "unknown column 'Extra'"),
        ("ImageId,ClassId,EncodedPixels\na.jpg,1\n", 2, "has 2 fields"),
        ("ImageId_ClassId,EncodedPixels\nnounderscore,1 5\n", 2, "is not '<image>_<class>'"),
    ],
)
def test_problems_name_file_row_and_problem(tmp_path, text, row, words):
    path = write(tmp_path, text)
    labels = parse_labels(path)
    assert any(p.row == row and words in p.problem for p in labels.problems), labels.problems
    with pytest.raises(DataError) as info:
        read_labels(path)
    assert str(path) in str(info.value) and f"row {row}" in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(LabelError, match="not found"):
        parse_labels(tmp_path / "nope.csv")
    with pytest.raises(LabelError, match="neither Kaggle format"):
        parse_labels(write(tmp_path, "a,b\n1,2\n"))
    with pytest.raises(LabelError, match="empty"):
        parse_labels(write(tmp_path, ""))


def test_real_labels(real_sample):
    table = read_labels(real_sample / "train.csv")
    assert len(table) == 40
    assert table.ClassId.value_counts().to_dict() == {3: 20, 4: 19, 2: 1}
