"""The serve command (the inspection web page and JSON API) and the reviewers' tokens (token add|list|remove)."""

from __future__ import annotations

from pathlib import Path

import typer

from steelinspect.cli.console import err, out


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
    db: str = typer.Option(None, "--db", help="The inspection log (sqlite:///runs/inspections.db, "
                                               "postgresql://user@host/db): Review, History and Coil tabs; "
                                               "uploads are recorded too."),
    token_file: Path = typer.Option(None, "--token-file",
                                    help="Reviewers' tokens (steelinspect token add). Without it the server only "
                                         "reads, and serves on a loopback host only."),
) -> None:
    """Serve the inspection page: upload or browse images, see defects, classes and sizes."""
    from steelinspect.cli.model_cmds import runs_arg
    from steelinspect.serve.app import ServeConfig, serve as run_server

    if db:
        from steelinspect.cli.log_cmds import require_db_extra

        require_db_extra()
    # The config checks the host and the token file before any model loads: a refusal is immediate.
    run_server(ServeConfig(binary=runs_arg(binary), multiclass=runs_arg(multiclass),
                           segment=runs_arg(segment) if segment else None, data=data, host=host, port=port,
                           max_upload_mb=max_upload_mb, max_files=max_files, max_request_mb=max_request_mb,
                           request_timeout=request_timeout, follow_symlinks=follow_symlinks, engine=engine,
                           precision=precision, tta=tta, db=db, token_file=token_file))


token_app = typer.Typer(help="Reviewers' tokens for serve --token-file (the file keeps only their SHA-256).",
                        no_args_is_help=True)
TOKEN_FILE = typer.Option(..., "--token-file", help="The token file (one line per reviewer; mode 0600).")


@token_app.command("add")
def token_add(name: str = typer.Argument(..., help="The reviewer's name, stored with each review."),
              token_file: Path = TOKEN_FILE) -> None:
    """Make a token for a reviewer and print it once (it is not stored; only its hash is)."""
    from steelinspect.serve.tokens import add_token

    token = add_token(token_file, name)
    out.print(token)
    err.print(f"reviewer {name} added to {token_file}; the token above is shown only now "
              "(paste it into the page's Reviewer token field)")


@token_app.command("list")
def token_list(token_file: Path = TOKEN_FILE) -> None:
    """The reviewers' names (no tokens: the file has none)."""
    from steelinspect.serve.tokens import list_names

    for name in list_names(token_file):
        out.print(name)


@token_app.command("remove")
def token_remove(name: str = typer.Argument(...), token_file: Path = TOKEN_FILE) -> None:
    """Remove a reviewer: their token stops working (a running server notices the change)."""
    from steelinspect.serve.tokens import remove_token

    remove_token(token_file, name)
    out.print(f"removed reviewer {name} from {token_file}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(token_app, name="token")
