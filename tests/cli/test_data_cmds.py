"""The data commands through the real console script: exit codes and messages, never a traceback."""


from tests.cli_runner import run_cli as run
from tests.data.fixtures import make_dataset


def test_check_clean_real_sample(real_sample):
    proc = run("check", real_sample)
    assert proc.returncode == 0
    assert "OK" in proc.stdout and "30 images, 40 label rows" in proc.stdout


def test_check_bad_data_exit_1_with_table(tmp_path):
    root = make_dataset(tmp_path / "d", rows=[("a.jpg", 9, "1 5"), ("q.jpg", 1, "1 5")])
    proc = run("check", root)
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    assert "ClassId 9 is outside 1-4" in out and "image q.jpg is not in" in out
    assert "FAILED" in out and "bad_class: 1" in out and "missing_image: 1" in out


def test_missing_data_dir(tmp_path):
    proc = run("check", tmp_path / "nope")
    assert proc.returncode == 1
    assert "data folder not found" in proc.stderr


def test_master_command_and_refusal(tmp_path):
    root = make_dataset(tmp_path / "d")
    proc = run("master", root, "--out", tmp_path / "m.csv")
    assert proc.returncode == 0 and (tmp_path / "m.csv").is_file()
    assert "4 images, 2 with defects, 3 masks" in proc.stdout

    (root / "train.csv").write_text("ImageId,ClassId,EncodedPixels\na.jpg,1,1 2 3\n")
    proc = run("master", root, "--out", tmp_path / "m2.csv")
    assert proc.returncode == 1 and not (tmp_path / "m2.csv").exists()
    assert "train.csv, row 2" in proc.stderr and "odd number of tokens" in proc.stderr
