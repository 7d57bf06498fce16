"""Export command: a run's model to ONNX."""

from __future__ import annotations

from pathlib import Path

import typer

from steelinspect.cli.console import out


def export(
    run_dir: Path = typer.Argument(..., help="Run directory of a trained model."),
    fmt: str = typer.Option("onnx", "--format", help="Only onnx for now."),
) -> None:
    """Write RUN_DIR/model.onnx (dynamic batch, preprocessing in its metadata), checked against PyTorch."""
    from steelinspect.errors import ConfigError
    from steelinspect.infer.export import export_onnx

    if fmt != "onnx":
        raise ConfigError(f"--format {fmt!r} is not supported; use onnx")
    report = export_onnx(run_dir)
    out.print(f"wrote {report.path}; ONNX Runtime matches PyTorch within {report.max_abs_diff:.1e} "
              f"on a {report.checked_shape} batch")


def register(app: typer.Typer) -> None:
    app.command()(export)
