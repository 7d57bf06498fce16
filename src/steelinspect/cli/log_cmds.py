"""Inspection log commands: watch (follow a camera folder into the log) and export-reviewed (the reviewed
inspections as a training dataset)."""

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


def watch(
    in_dir: Path = typer.Argument(..., help="The folder the camera system writes into (followed recursively)."),
    binary: Path = typer.Option(..., "--binary", help="Run directory of the step-1 (defect or clean) model."),
    multiclass: Path = typer.Option(..., "--multiclass", help="Run directory of the step-2 (which class) model."),
    segment: Path = typer.Option(None, "--segment", help="Run directory of a segment model: also log each defect region."),
    db: str = typer.Option(..., "--db", help="The inspection log's database URL (sqlite:///runs/inspections.db, postgresql://user@host/db)."),
    coil_pattern: str = typer.Option(None, "--coil-pattern", help="Regex searched in the path relative to IN_DIR, with (?P<coil>...) and (?P<frame>\\d+); default: IN_DIR/<coil>/<name>, frame = first number in the name."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds between two looks at the folder."),
    settle: float = typer.Option(2.0, "--settle", help="A file is taken once its size and mtime stayed the same this long (and a JPEG / PNG ends whole)."),
    give_up: float = typer.Option(120.0, "--give-up", help="A file still incomplete this long after its last change is logged as a problem."),
    once: bool = typer.Option(False, "--once", help="Inspect what is there (waiting for files still settling), then exit."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per model call and per committed transaction."),
    workers: int = typer.Option(4, "--workers", help="Threads decoding images ahead of the model."),
    device: str = typer.Option("auto", "--device"),
    engine: str = typer.Option("auto", "--engine", help="auto (on CPU: the int8 export, else the float ONNX export, else PyTorch), int8, onnx or torch."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (PyTorch autocast)."),
    ok_below: float = typer.Option(None, "--ok-below", help="p_defect below this is band OK (default: the binary run's tuned T1 in bands.json, else 0.3)."),
    ng_above: float = typer.Option(None, "--ng-above", help="p_defect above this is band NG; between the two, REVIEW (default: the tuned T2, else 0.7)."),
) -> None:
    """Follow a folder a camera writes into: inspect each new image once, in (coil, frame) order, into the log.
    Restart-safe (files already in the log are skipped); Ctrl-C stops after the current batch."""
    require_db_extra()
    import signal
    import threading

    from steelinspect.infer.config import PredictConfig
    from steelinspect.inspect_log import open_log
    from steelinspect.inspect_log.naming import CoilNaming
    from steelinspect.inspect_log.watch import FrameInspector, WatchConfig, watch as run_watch

    config = WatchConfig(binary, multiclass, segment,
                         PredictConfig(batch_size=batch_size, workers=workers, device=device, engine=engine,
                                       precision=precision),
                         coil_pattern=coil_pattern, poll=poll, settle=settle, give_up=give_up, once=once)
    config.validate()
    naming = CoilNaming(coil_pattern)  # a bad pattern fails before the models load
    if not in_dir.is_dir():
        from steelinspect.errors import ConfigError

        raise ConfigError(f"{in_dir}: not a folder (the folder to watch)")
    stop = threading.Event()

    def interrupted(signum, _frame) -> None:
        # The first Ctrl-C (or SIGTERM) ends the loop after the current batch; a second Ctrl-C interrupts at once.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    from steelinspect.runs.bands import resolve_bands

    with open_log(db, resolve_bands(binary, multiclass, ok_below, ng_above)) as log:
        inspector = FrameInspector(config)
        for note in inspector.notes:
            err.print(styled("note", "yellow", f" {note}"))
        err.print(f"watching {in_dir.resolve()} into {log.shown_url}; {naming.describe()}")
        previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with _Counter() as counter:
                stats = run_watch(log, in_dir, config, stop=stop, on_progress=counter.update,
                                  on_problem=counter.problem, inspector=inspector)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    order = (f"; {stats.numbered_by_order} frames numbered by order within their coil (no number in the name)"
             if stats.numbered_by_order else "")
    out.print(f"{'stopped' if stop.is_set() else 'done'}: {stats.inspected} inspected, {stats.problems} problems, "
              f"{stats.pending} pending, {stats.already_logged} already in the log; "
              f"{stats.images_per_s:.1f} images/s{order}")


class _Counter:
    """inspected / problems / pending: a live line on a terminal, else a line whenever the counts change."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True, markup=False)
        self.live = None
        self.last = None

    @staticmethod
    def _text(stats) -> str:
        return (f"inspected {stats.inspected}  problems {stats.problems}  pending {stats.pending}  "
                f"({stats.already_logged} already in the log)")

    def __enter__(self) -> "_Counter":
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live("", console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, stats) -> None:
        text = self._text(stats)
        if self.live is not None:
            self.live.update(text)
        elif text != self.last:
            self.console.print(text, highlight=False)
        self.last = text

    def problem(self, problem) -> None:
        self.console.print(styled("problem", "yellow", f" {problem}"), highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(watch)
    app.command("export-reviewed")(export_reviewed)
