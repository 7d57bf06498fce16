"""`steelinspect score` through the console script, on the real sample."""


from steelinspect.data.labels import read_labels, write_labels
from steelinspect.data.master import image_ids
from steelinspect.infer.submission import write_submission
from tests.cli_runner import run_cli as run


def words(text):
    return " ".join(text.split())


def test_truth_against_itself_scores_one(real_sample):
    proc = run("score", real_sample / "train.csv", "--truth", real_sample)
    assert proc.returncode == 0, proc.stderr
    out = words(proc.stdout)
    assert "Kaggle Dice: 1.0000 over 30 images (120 image-class pairs)" in out
    # 40 masks among 120 pairs: an all-empty submission scores 80/120.
    assert "all-empty submission: 0.6667" in out


def test_all_empty_submission_scores_fraction_of_empty_pairs(real_sample, tmp_path):
    sub = tmp_path / "empty.csv"
    write_submission(sub, [(i, [""] * 4) for i in image_ids(real_sample / "train_images")])
    proc = run("score", sub, "--truth", real_sample)
    assert proc.returncode == 0, proc.stderr
    assert f"Kaggle Dice: {80 / 120:.4f}" in words(proc.stdout)
    assert "margin +0.0000" in words(proc.stdout)


def test_reads_original_format(real_sample, tmp_path):
    table = read_labels(real_sample / "train.csv")
    table = table[table.ClassId != 4]  # drop the class-4 masks: that class scores 11/30 (its empty pairs)
    path = tmp_path / "orig.csv"
    write_labels(table, path, fmt="original", image_ids=image_ids(real_sample / "train_images"))
    proc = run("score", path, "--truth", real_sample)
    assert proc.returncode == 0, proc.stderr
    out = words(proc.stdout)
    assert "(original format)" in out
    assert f"Kaggle Dice: {(30 + 30 + 30 + 11) / 120:.4f}" in out


def test_malformed_submission_refused_with_file_and_row(real_sample, tmp_path):
    path = tmp_path / "bad.csv"
    first = image_ids(real_sample / "train_images")[0]
    path.write_text(f"ImageId,EncodedPixels,ClassId\n{first},,1\n{first},5 x,2\n")
    proc = run("score", path, "--truth", real_sample)
    assert proc.returncode == 1
    assert f"{path}, row 3" in proc.stderr and "'x' is not an integer" in proc.stderr
