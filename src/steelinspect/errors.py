"""Error types. The library raises these; only the CLI turns them into messages and exit codes.

Every error carries where it happened (file, row) and what is wrong, so the message a user sees
names all three.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data. `row` is the 1-based line number in the file (header = 1)."""

    kind: str
    file: str
    problem: str
    row: int | None = None

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}, row {self.row}"
        return f"{where}: {self.problem}"


class SteelInspectError(Exception):
    """Base class of every error the library raises on purpose."""

    def __init__(self, problem: str, file: str | Path | None = None, row: int | None = None):
        self.problem = _worker_message(problem) if file is None else problem
        self.file = None if file is None else str(file)
        self.row = row
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.file is None:
            return self.problem
        where = self.file if self.row is None else f"{self.file}, row {self.row}"
        return f"{where}: {self.problem}"


# torch's DataLoader re-raises a worker's exception as its type built from the text of the whole traceback:
# "Caught ImageError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n ...".
_WORKER_TRACEBACK = re.compile(r"Caught (\w+) in [^\n]*\.\nOriginal Traceback \(most recent call last\):\n")


def _worker_message(problem: str) -> str:
    """The one line that was the exception's own message when `problem` is such a re-raised traceback."""
    if not isinstance(problem, str):
        return problem
    caught = _WORKER_TRACEBACK.match(problem)
    if caught is None:
        return problem
    for line in reversed(problem.splitlines()):  # the last line is "steelinspect.errors.ImageError: <message>"
        name, sep, message = line.partition(": ")
        if sep and name.rsplit(".", 1)[-1] == caught.group(1):
            return message
    return problem


class RLEError(SteelInspectError, ValueError):
    """A run-length encoded mask is malformed."""


class LabelError(SteelInspectError):
    """The label file (train.csv) cannot be read or holds a bad row."""


class ImageError(SteelInspectError):
    """An image cannot be read, is corrupt, or has the wrong size."""


class DataError(SteelInspectError):
    """A dataset fails validation; `problems` lists everything found in one pass."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more problem(s); run `steelinspect check`)" if len(self.problems) > 1 else ""
        super().__init__(first.problem + more, first.file, first.row)


class RunError(SteelInspectError):
    """A run directory is missing, incomplete or of the wrong kind."""


class ConfigError(SteelInspectError, ValueError):
    """An option or configuration value is invalid."""


class ImageTooLargeError(ImageError):
    """An image (or its file) is over the pixel limit; refused before it is decoded."""


class LogError(SteelInspectError):
    """The inspection log (database) cannot be opened, migrated or written, or a request to it is invalid."""
