"""The CLI's two consoles, with console markup off: a message carries names from the user's files (an ImageId in
train.csv, a folder name), and "[/]" in one would crash rich's markup parser or restyle the line. Words that are
styled on purpose are built as Text by `styled`."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


def styled(word: str, style: str, rest: str = "") -> Text:
    """`word` in `style`, then `rest` as plain text."""
    return Text.assemble((word, style), rest)
