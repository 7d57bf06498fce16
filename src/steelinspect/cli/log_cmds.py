"""Inspection log commands: export-reviewed (the reviewed inspections as a training dataset)."""

from __future__ import annotations

from pathlib import Path

import typer

from steelinspect.cli.console import err, out, styled
from steelinspect.cli.progress import progress_bar


def require_db_extra() -> None:
    """A one-line refusal, not an ImportError traceback, when the `db` extra is not installed."""
    from steelinspect.errors import ConfigError

    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the inspection log needs the db extra: pip install 'steelinspect[db]' ({exc})") from None


def export_reviewed(
    db: str = typer.Option("sqlite:///runs/inspections.db", "--db", help="The inspection log's database URL."),
    out_dir: Path = typer.Option(..., "--out", help="DATA_DIR to write (train.csv + train_images/); replaced whole."),
    coil: str = typer.Option(None, "--coil", help="Only the frames of this coil."),
) -> None:
    """Write the reviewed inspections as a Kaggle-layout dataset that `check` and `train` take as is."""
    require_db_extra()
    from steelinspect.inspect_log import LogFilter, open_log
    from steelinspect.inspect_log.export import export_reviewed as run_export

    with open_log(db) as log, progress_bar("exporting", None) as advance:
        stats = run_export(log, out_dir, LogFilter(coil=coil), on_image=advance)
    for problem in stats.skipped:
        err.print(styled("skipped", "yellow", f" {problem}"))
    out.print(f"{stats.images} reviewed images ({stats.clean} clean, {stats.defect_rows} defect masks), "
              f"{len(stats.skipped)} skipped; wrote {out_dir}")


def register(app: typer.Typer) -> None:
    app.command("export-reviewed")(export_reviewed)
