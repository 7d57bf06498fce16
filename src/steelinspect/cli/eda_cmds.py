"""Commands of this group (registered on the app by cli.main)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
