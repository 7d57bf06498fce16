"""Whatever a library error's text holds, the CLI prints it as one line of plain text."""

from tests.cli_runner import run_cli


def test_an_error_is_one_line_of_plain_text(tmp_path):
    for name, shown in [("two\nlines\tand tab", "two lines and tab"), ("a[bold]b[/]c", "a[bold]b[/]c")]:
        proc = run_cli("check", tmp_path / name)
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == [f"error: {tmp_path / shown}: data folder not found"], proc.stderr
