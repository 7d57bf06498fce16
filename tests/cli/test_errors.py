"""Whatever a library error's text holds, the CLI prints it as one line of plain text."""

from tests.cli_runner import run_cli, run_main


def test_an_error_is_one_line_of_plain_text(tmp_path):
    for name, shown in [("two\nlines\tand tab", "two lines and tab"), ("a[bold]b[/]c", "a[bold]b[/]c")]:
        proc = run_cli("check", tmp_path / name)
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == [f"error: {tmp_path / shown}: data folder not found"], proc.stderr


def test_names_from_the_users_files_are_printed_as_text(tmp_path):
    """An ImageId in train.csv is the user's text: "[/]" in it once crashed `check` with rich's MarkupError."""
    data = tmp_path / "data"
    (data / "train_images").mkdir(parents=True)
    (data / "train.csv").write_text("ImageId,ClassId,EncodedPixels\na[/]b[red].jpg,1,1 5\n")
    code, out, err = run_main("check", data)
    assert code == 1 and "Traceback" not in out + err
    assert "a[/]b[red].jpg" in out and "FAILED" in out
