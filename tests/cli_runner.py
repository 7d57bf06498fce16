"""Run the real console entry point (`python -m steelinspect ...`) the way a user does."""

import subprocess
import sys


def run_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command; whatever it exits with, it must never print a traceback."""
    proc = subprocess.run([sys.executable, "-m", "steelinspect", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc
