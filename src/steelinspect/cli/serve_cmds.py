"""The serve command: the inspection web page and JSON API."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    binary: list[Path] = typer.Option(..., "--binary", help="Run directory of the step-1 model, or a --folds parent "
                                      "(repeat for several runs averaged)."),
    multiclass: list[Path] = typer.Option(..., "--multiclass", help="Run directory of the step-2 model, or a --folds "
                                          "parent (repeat for several runs averaged)."),
    segment: list[Path] = typer.Option(None, "--segment", help="Run directory of a segment model (adds masks), or a "
                                       "--folds parent (repeat for several runs averaged)."),
    data: Path = typer.Option(None, "--data", help="A labelled DATA_DIR to browse (truth beside prediction)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb",
                                        help="Largest accepted file (a per-file error above)."),
    max_files: int = typer.Option(32, "--max-files", help="Most files in one upload request (413 above)."),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb",
                                         help="Largest request body, counted as it streams (413 above)."),
    request_timeout: float = typer.Option(120.0, "--request-timeout",
                                          help="Seconds a request body may take to arrive (408 after); files of "
                                               "an upload not started by then are not inspected."),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks",
                                         help="Serve symlinks in --data that lead outside it (refused by default)."),
    engine: str = typer.Option("auto", "--engine", help="auto, int8, onnx or torch."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (PyTorch autocast)."),
    tta: bool = typer.Option(False, "--tta", help="Average the segmenter over flips."),
) -> None:
    """Serve the inspection page: upload or browse images, see defects, classes and sizes."""
    from steelinspect.cli.model_cmds import runs_arg
    from steelinspect.serve.app import ServeConfig, serve as run_server

    run_server(ServeConfig(binary=runs_arg(binary), multiclass=runs_arg(multiclass),
                           segment=runs_arg(segment) if segment else None, data=data, host=host, port=port,
                           max_upload_mb=max_upload_mb, max_files=max_files, max_request_mb=max_request_mb,
                           request_timeout=request_timeout, follow_symlinks=follow_symlinks, engine=engine,
                           precision=precision, tta=tta))


def register(app: typer.Typer) -> None:
    app.command()(serve)
