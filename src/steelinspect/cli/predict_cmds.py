"""Prediction commands: predict (the cascade over images) and evaluate-cascade."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steelinspect.cli.console import err, out, styled
from steelinspect.cli.progress import progress_bar


ENSEMBLE_HELP = ", or a --folds parent; repeat for several runs (an ensemble: probabilities averaged)."
BINARY = typer.Option(..., "--binary", help="Run directory of the step-1 (defect or clean) model" + ENSEMBLE_HELP)
MULTICLASS = typer.Option(..., "--multiclass", help="Run directory of the step-2 (which class) model" + ENSEMBLE_HELP)


def _count(images: list[Path]) -> int:
    from steelinspect.data.images import list_images

    return len(list_images(images if len(images) > 1 else images[0]))


def predict(
    images: list[Path] = typer.Argument(..., help="A folder of images, or image files."),
    binary: list[Path] = BINARY,
    multiclass: list[Path] = MULTICLASS,
    out_csv: Path = typer.Option(Path("predictions.csv"), "--out", help="Where to write one row per image."),
    batch_size: int = typer.Option(16, "--batch-size"),
    workers: int = typer.Option(4, "--workers", help="Threads decoding images ahead of the model."),
    device: str = typer.Option("auto", "--device"),
    engine: str = typer.Option("auto", "--engine", help="auto (on CPU: the int8 export, else the float ONNX export, else PyTorch), int8, onnx or torch."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 (PyTorch autocast: fast on CPUs with AMX / AVX-512 BF16 and on GPUs)."),
    segment: list[Path] = typer.Option(None, "--segment", help="Run directory of a segment model (adds masks, areas, "
                                       "boxes)" + ENSEMBLE_HELP),
    submission: Path = typer.Option(None, "--submission", help="With --segment: write a Kaggle submission CSV."),
    overlays: Path = typer.Option(None, "--overlays", help="With --segment: write PNG mask overlays into this folder."),
    tta: bool = typer.Option(False, "--tta", help="With --segment: average the segmenter over horizontal and vertical flips."),
    class_gate: str = typer.Option("drop", "--class-gate", help="With --segment: drop (keep only step 2's classes), scale (min area / class probability) or off."),
    db: str = typer.Option(None, "--db", help="Also record every inspection in this log (sqlite:///runs/inspections.db, postgresql://user@host/db)."),
    coil: str = typer.Option(None, "--coil", help="With --db: the coil (lot) these images are frames of, numbered in file-name order."),
    ok_below: float = typer.Option(None, "--ok-below", help="With --db: p_defect below this is band OK (default: the binary run's tuned T1 in bands.json, else 0.3)."),
    ng_above: float = typer.Option(None, "--ng-above", help="With --db: p_defect above this is band NG; between the two, REVIEW (default: the tuned T2, else 0.7)."),
    processes: int = typer.Option(1, "--processes", help="Worker processes on this machine, each predicting every Nth image; the outputs are merged into exactly what one process writes. Under torchrun leave it at 1 (the ranks are the processes)."),
    threads: int = typer.Option(None, "--threads", help="Model threads per process (default: with --processes or torchrun, this machine's cores divided among its processes; else PyTorch's / ONNX Runtime's own)."),
) -> None:
    """Predict defect / clean and the defect classes for every image, streaming, batched; with --segment also
    the defect masks (areas, boxes, Kaggle submission, overlays); with --db every verdict is also logged.
    On several processes: --processes N, or `torchrun ... -m steelinspect predict ...` (several machines)."""
    from contextlib import nullcontext

    from steelinspect.cli.model_cmds import runs_arg
    from steelinspect.errors import ConfigError
    from steelinspect.infer.cascade import Cascade, PredictConfig, PredictStats, predict as run_predict, write_predictions
    from steelinspect.infer.shard import launched_by_torchrun

    binary, multiclass = runs_arg(binary), runs_arg(multiclass)
    segment = runs_arg(segment) if segment else None
    config = PredictConfig(batch_size=batch_size, workers=workers, device=device, engine=engine, precision=precision,
                           threads=threads)
    source = images if len(images) > 1 else images[0]
    if db is None and coil is not None:
        raise ConfigError("--coil needs --db (the coil is recorded in the inspection log)")
    sinking = nullcontext()
    open_db = None
    if db:  # opened before the models load: a wrong URL or band fails at once
        from steelinspect.cli.log_cmds import require_db_extra

        require_db_extra()
        from steelinspect.inspect_log.sink import open_sink
        from steelinspect.runs.bands import resolve_bands

        bands = resolve_bands(binary, multiclass, ok_below, ng_above)

        def open_db():
            return open_sink(db, bands, coil=coil, batch=batch_size)

        sinking = open_db() if processes == 1 and not launched_by_torchrun() else nullcontext()
    if processes != 1 or launched_by_torchrun():
        from steelinspect.infer.segment_predict import PipelineOutputs, SegmentOptions
        from steelinspect.infer.shard import ShardJob

        job = ShardJob(source, binary, multiclass, PipelineOutputs(out_csv, submission, overlays), config, segment,
                       SegmentOptions(tta=tta, class_gate=class_gate))
        return _predict_sharded(job, images, processes, open_db)
    with sinking as sink:
        if segment is not None:
            _predict_segment(source, binary, multiclass, segment, out_csv, submission, overlays, tta, class_gate,
                             config, _count(images), sink)
        else:
            if submission or overlays or tta:
                raise ConfigError("--submission, --overlays and --tta need a segment run (--segment RUN_DIR)")
            cascade = Cascade.from_runs(binary, multiclass, config)
            stats = PredictStats()
            with progress_bar("predicting", _count(images)) as advance:
                rows = run_predict(source, cascade, config, stats, on_image=advance,
                                   on_problem=sink.add_problem if sink is not None else None)
                if sink is not None:
                    sink.start({"binary": cascade.binary, "multiclass": cascade.multiclass})
                    rows = sink.rows(rows)
                write_predictions(rows, out_csv)
            _report(stats, _summary(stats, out_csv))
    _report_sink(sink)


def _summary(stats, out_csv, submission=None, overlays=None) -> str:
    masks = getattr(stats, "masks", None)
    masks = f"masks {', '.join(f'class {c}: {n}' for c, n in masks.items())}; " if masks is not None else ""
    return (f"{stats.images} images, {stats.defects} with defects, {len(stats.skipped)} skipped; {masks}"
            f"{stats.images_per_s:.1f} images/s; wrote {out_csv}"
            + (f", {submission}" if submission else "") + (f", overlays in {overlays}" if overlays else ""))


def _report_sink(sink) -> None:
    if sink is not None:
        for note in sink.notes:
            err.print(styled("note", "yellow", f" {note}"))
        per_image = 1000 * sink.seconds / max(sink.recorded, 1)
        problems = f", {sink.problems} unreadable files as problems" if sink.problems else ""
        out.print(f"logged {sink.recorded} inspections{problems} to {sink.log.shown_url} "
                  f"({per_image:.1f} ms per image; {describe_bands(sink.log.bands)})")


def _predict_sharded(job, images: list[Path], processes: int, open_db) -> None:
    """--processes N or torchrun: the library shares the images out and merges; under torchrun only rank 0 shows
    progress and speaks, and a failure is one line from one rank (the others exit 1 quietly)."""
    from contextlib import nullcontext

    from steelinspect.infer.shard import ShardError, check_processes, predict_sharded, share, torchrun_rank

    rank, world = torchrun_rank()
    if world == 1:  # before the progress bar (under torchrun the ranks check together: one line from rank 0)
        check_processes(processes)
        job.validate()
    bar = progress_bar("predicting", len(share(_count(images), rank, world))) if rank == 0 else nullcontext()
    try:
        with bar as advance:
            result = predict_sharded(job, processes, open_sink=open_db, on_image=advance)
    except ShardError as exc:
        if not exc.report:
            raise typer.Exit(1) from None
        raise
    if result.main:
        outputs = job.outputs
        _report(result.stats, _summary(result.stats, outputs.predictions, outputs.submission, outputs.overlays))
        _report_sink(result.sink)


def describe_bands(bands) -> str:
    text = f"bands: step 1 OK < {bands.step1.t1:.4g}, NG > {bands.step1.t2:.4g}"
    if bands.classes:
        text += f", classes {' '.join(map(str, sorted(bands.classes)))} banded"
    return text


def _report(stats, summary: str) -> None:
    """The images skipped (each with its problem) and the notes of a prediction on stderr, then `summary`."""
    for problem in stats.skipped:
        err.print(styled("skipped", "yellow", f" {problem}"))
    for note in stats.notes:
        err.print(styled("note", "yellow", f" {note}"))
    out.print(summary)


def _predict_segment(source, binary, multiclass, segment, out_csv, submission, overlays, tta, class_gate, config,
                     total: int, sink=None) -> None:
    from steelinspect.infer.segment_predict import PipelineOutputs, SegmentOptions, predict_pipeline

    outputs = PipelineOutputs(out_csv, submission, overlays)
    with progress_bar("predicting", total) as advance:
        stats = predict_pipeline(source, binary, multiclass, segment, outputs, config,
                                 SegmentOptions(tta=tta, class_gate=class_gate), on_image=advance, sink=sink,
                                 on_problem=sink.add_problem if sink is not None else None)
    _report(stats, _summary(stats, out_csv, submission, overlays))


def evaluate_cascade(
    binary: list[Path] = BINARY,
    multiclass: list[Path] = MULTICLASS,
    data: Path = typer.Option(..., "--data", help="Labelled DATA_DIR (best: images neither run trained on)."),
    out_json: Path = typer.Option(None, "--out", help="Also write the metrics as JSON."),
    batch_size: int = typer.Option(16, "--batch-size"),
    workers: int = typer.Option(4, "--workers"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Score both steps together on a labelled dataset."""
    from steelinspect.infer.evaluate import score_cascade
    from steelinspect.io import write_json
    from steelinspect.metrics.cascade import CASCADE_COLUMNS, cascade_rows

    from steelinspect.cli.model_cmds import runs_arg

    with progress_bar("predicting", None) as advance:
        metrics = score_cascade(runs_arg(binary), runs_arg(multiclass), data, batch_size=batch_size, workers=workers, device=device,
                                on_image=advance)
    table = Table(title=f"Cascade on {data} ({metrics['images']} images)")
    for col in CASCADE_COLUMNS:
        table.add_column(col, justify="right")
    for label, *scores, n in cascade_rows(metrics):
        table.add_row(label, *(f"{v:.3f}" for v in scores), str(n))
    out.print(table)
    out.print(f"defect images missed by step 1: {metrics['missed_by_step1']}; "
              f"clean images flagged by step 1: {metrics['false_alarms_step1']}")
    if out_json:
        write_json(out_json, metrics)
        out.print(f"wrote {out_json}")


def register(app: typer.Typer) -> None:
    app.command()(predict)
    app.command("evaluate-cascade")(evaluate_cascade)
