"""Run the real console entry point (`python -m steelinspect ...`) the way a user does, or in this process."""

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout


def run_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command; whatever it exits with, it must never print a traceback."""
    proc = subprocess.run([sys.executable, "-m", "steelinspect", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def run_main(*args) -> tuple[int, str, str]:
    """The same entry point (cli.main.main) in this process: (exit code, stdout, stderr).

    For what a command says and exits with: it skips the interpreter start-up and the torch import that each
    `run_cli` pays (seconds on 2 cores). An exception that escapes main() would be a traceback; it fails the test.
    """
    from steelinspect.cli.main import main

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["steelinspect", *map(str, args)]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()
