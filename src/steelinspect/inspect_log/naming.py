"""Which coil a frame belongs to and where on it: names of the files a camera system writes.

Default layout: IN_DIR/<coil>/<name>, the coil is the folder holding the file (at any depth, so
IN_DIR/<day>/<coil>/<name> works too) and the frame index is the first whole number in the file name
("frame_0017.jpg" -> 17, "C0417-17.jpg" -> 417: give a pattern when the name starts with the coil). A file name
without a number gets no index here: the watcher numbers such frames in the order it takes them, after the
coil's highest frame already in the log (FrameName.frame is None, `numbered_by_order` says so).

With a pattern (a regular expression with the named groups `coil` and optionally `frame`, searched in the
path relative to IN_DIR written with "/"), both come from the groups; without a `frame` group, frames are
numbered by order as above. A path the pattern does not match is refused (the watcher logs it as a problem).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from steelinspect.errors import ConfigError, LogError

MAX_COIL_CHARS = 128  # inspection.coil is a String(128)
MAX_FRAME = 2**31 - 1  # inspection.frame is a 32-bit integer
_NUMBER = re.compile(r"\d+")
_DIGITS = re.compile(r"(\d+)")


class NamingError(LogError):
    """A file's path says no coil or frame (it does not match the layout or the pattern)."""


@dataclass(frozen=True)
class FrameName:
    coil: str
    frame: int | None  # None: numbered by the order the watcher takes the coil's files

    @property
    def numbered_by_order(self) -> bool:
        return self.frame is None


def natural_key(text: str) -> tuple:
    """Sort key that puts "C2" before "C10" (numbers compared as numbers)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text) if part)


def flat_image_id(relative: str | PurePath) -> str:
    """The image id of a watched file: its path relative to IN_DIR with "__" between the parts
    ("C0417/frame_0001.jpg" -> "C0417__frame_0001.jpg"). Coils reuse file names; the id must not (it is the
    file name of the image in an exported dataset)."""
    return "__".join(PurePosixPath(PurePath(relative).as_posix()).parts)


class CoilNaming:
    """Coil and frame of a path relative to the watched folder (see the module's docstring)."""

    def __init__(self, pattern: str | None = None):
        self.pattern = None
        if pattern is not None:
            try:
                self.pattern = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"--coil-pattern is not a regular expression: {exc}") from None
            if "coil" not in self.pattern.groupindex:
                raise ConfigError("--coil-pattern needs a named group (?P<coil>...); (?P<frame>\\d+) is optional")

    def describe(self) -> str:
        """How coil and frame are read, in words (the CLI prints it at start)."""
        if self.pattern is None:
            return ("coil: the folder holding the file; frame: the first number in the file name (names without "
                    "one: numbered in the order they are taken)")
        frame = ("the group 'frame'" if "frame" in self.pattern.groupindex
                 else "the order they are taken (the pattern has no group 'frame')")
        return f"coil and frame from --coil-pattern {self.pattern.pattern!r}; frame: {frame}"

    def parse(self, relative: str | PurePath) -> FrameName:
        """The coil and frame of `relative` (a path below the watched folder); NamingError when it says none."""
        rel = PurePosixPath(PurePath(relative).as_posix())
        if self.pattern is None:
            if len(rel.parts) < 2:
                raise NamingError("not inside a coil folder (the layout is IN_DIR/<coil>/<name>; "
                                  "see --coil-pattern for others)", str(rel))
            coil = rel.parts[-2]
            found = _NUMBER.search(PurePosixPath(rel.name).stem)
            frame = None if found is None else found.group()
        else:
            match = self.pattern.search(str(rel))
            if match is None:
                raise NamingError(f"does not match --coil-pattern {self.pattern.pattern!r}", str(rel))
            coil = match.group("coil")
            frame = match.group("frame") if "frame" in self.pattern.groupindex else None
            if not coil:
                raise NamingError("--coil-pattern matched an empty coil", str(rel))
            if frame is not None and not frame.isdigit():
                raise NamingError(f"--coil-pattern's frame {frame!r} is not a whole number", str(rel))
        if len(coil) > MAX_COIL_CHARS:
            raise NamingError(f"coil id longer than {MAX_COIL_CHARS} characters", str(rel))
        if frame is not None and int(frame) > MAX_FRAME:
            raise NamingError(f"frame number {frame} is too large (at most {MAX_FRAME}; see --coil-pattern)",
                              str(rel))
        return FrameName(coil, None if frame is None else int(frame))
