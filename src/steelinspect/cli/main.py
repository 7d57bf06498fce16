"""The `steelinspect` console script.

Each command module registers its commands on one typer app. Library errors (SteelInspectError)
become a one-line message and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from steelinspect.cli.console import err, styled
from steelinspect.constants import MAX_PIXELS, MAX_PIXELS_ENV
from steelinspect.errors import SteelInspectError

app = typer.Typer(
    name="steelinspect",
    help="Find and classify defects on steel-plate images (Severstal format).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def options(
    max_pixels: int = typer.Option(
        None, "--max-pixels", min=1, metavar="N",
        help=f"Refuse any image whose header declares more than N pixels (width x height), before decoding it. "
             f"Default {MAX_PIXELS:,} (4 frames of 1600x256), or ${MAX_PIXELS_ENV}.",
    ),
) -> None:
    """Options for every command (given before it: steelinspect --max-pixels N COMMAND ...)."""
    if max_pixels is not None:
        # Through the environment so that loader worker processes and threads read the same limit.
        os.environ[MAX_PIXELS_ENV] = str(max_pixels)


def _register() -> None:
    # Imported here so `steelinspect --help` stays quick and each group stays in its own file.
    from steelinspect.cli import (
        data_cmds,
        eda_cmds,
        export_cmds,
        log_cmds,
        model_cmds,
        predict_cmds,
        score_cmds,
        serve_cmds,
    )

    for module in (data_cmds, eda_cmds, model_cmds, predict_cmds, log_cmds, score_cmds, export_cmds, serve_cmds):
        module.register(app)


_register()


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(text.split())


def main() -> None:
    try:
        app()
    except SteelInspectError as exc:
        # One line whatever the source: text from torch, pandas or the OS can carry newlines and tabs.
        err.print(styled("error:", "bold red", f" {one_line(str(exc))}"), highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print(styled("interrupted", "yellow"))
        sys.exit(130)
