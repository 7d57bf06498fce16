"""Data commands: synth, check, master, demo."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steelinspect.cli.console import out, styled
from steelinspect.cli.progress import progress_bar


def synth(
    out_dir: Path = typer.Argument(..., help="Folder to create: OUT_DIR/train.csv + OUT_DIR/train_images/."),
    images: int = typer.Option(200, "--images", "-n", help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same dataset."),
    label_format: str = typer.Option("new", "--format", help="'new' (ImageId,ClassId,EncodedPixels) or 'original' (ImageId_ClassId,EncodedPixels)."),
    workers: int = typer.Option(None, "--workers", help="Worker processes (default: all cores)."),
) -> None:
    """Write a synthetic dataset in the Kaggle Severstal layout."""
    from steelinspect.data.synth import generate

    with progress_bar("generating images", images) as advance:
        path = generate(out_dir, images=images, seed=seed, label_format=label_format, workers=workers, on_image=advance)
    out.print(f"wrote {images} images and {path / 'train.csv'} ({label_format} format)")


def check(
    data: Path = typer.Argument(..., help="DATA_DIR holding train.csv and train_images/."),
    workers: int = typer.Option(4, "--workers", help="Threads decoding images."),
) -> None:
    """Check a dataset against every rule; exit 0 when clean, 1 with a table of problems."""
    from steelinspect.data.check import check_dataset
    from steelinspect.data.master import image_ids
    from steelinspect.data.layout import data_dir

    total = len(image_ids(data_dir(data).images))
    with progress_bar("checking images", total) as advance:
        report = check_dataset(data, workers=workers, on_image=advance)
    summary = f"{report.images} images, {report.label_rows} label rows ({report.label_format} format)"
    if report.ok:
        out.print(styled("OK", "green", f": {summary}, no problems"))
        return
    table = Table(title=f"{len(report.problems)} problem(s) in {data}", show_lines=False)
    for col in ("kind", "file", "row", "problem"):
        table.add_column(col, overflow="fold")
    for p in report.problems:
        table.add_row(p.kind, p.file, "" if p.row is None else str(p.row), p.problem)
    out.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts().items()))
    out.print(styled("FAILED", "red", f": {summary}; {counts}"))
    raise typer.Exit(1)


def master(
    data: Path = typer.Argument(..., help="DATA_DIR holding train.csv and train_images/."),
    out_csv: Path = typer.Option(Path("master.csv"), "--out", help="Where to write the master table."),
) -> None:
    """Write the per-image master table (one row per image; images without labels are clean)."""
    from steelinspect.data.master import build_master, write_master

    table = build_master(data)
    write_master(table, out_csv)
    out.print(
        f"wrote {out_csv}: {len(table)} images, {int(table.Defect.sum())} with defects, "
        f"{int(table.Defect_no.sum())} masks"
    )


def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for everything the demo writes."),
    images: int = typer.Option(None, "--images", help="Synthetic images to generate (default: the demo's budget)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run everything end to end on a synthetic dataset and say where the outputs are."""
    from steelinspect.demo import DemoConfig, run_demo

    config = DemoConfig(out=out_dir, seed=seed) if images is None else DemoConfig(out=out_dir, seed=seed, images=images)
    result = run_demo(config, log=out.print)
    out.print(styled("\nOutputs", "bold"))
    for name, path in result.outputs.items():
        out.print(f"  {name:<22} {path}")
    if not result.token:
        out.print(styled("\nInspect images in the browser", "bold", " (then open http://127.0.0.1:8000):"))
        out.print(f"  {result.serve_command}")
        return
    frames = sum(result.bands.values())
    out.print(styled("\nInspection log", "bold", f" {result.outputs['inspection log']}: {frames} frames, "
                     + ", ".join(f"{band} {n}" for band, n in result.bands.items())))
    out.print(styled("\nReview in the browser", "bold", " (then open http://127.0.0.1:8000, tab Review):"))
    out.print(f"  {result.serve_command}")
    out.print(styled("\nReviewer token", "bold", f" for reviewer demo (paste it into the page's Reviewer token "
                     f"field; shown only now, {result.outputs['tokens']} keeps its hash):"))
    out.print(f"  {result.token}")


def register(app: typer.Typer) -> None:
    app.command()(synth)
    app.command()(check)
    app.command()(master)
    app.command()(demo)
