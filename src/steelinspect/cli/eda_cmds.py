"""EDA commands: eda (the report) and show (one image with its masks)."""

from __future__ import annotations

from pathlib import Path

import typer

from steelinspect.cli.console import out
from steelinspect.cli.progress import progress_bar


def eda(
    data: Path = typer.Argument(..., help="DATA_DIR holding train.csv and train_images/."),
    report_dir: Path = typer.Option(Path("report"), "--out", help="Folder for report.html, stats.json and figures."),
    sample: int = typer.Option(2000, "--sample", help="Images decoded for brightness and black band (0 = all)."),
    per_class: int = typer.Option(3, "--gallery", help="Gallery examples per class and of multi-class images."),
    seed: int = typer.Option(0, "--seed", help="Fixes the brightness sample and the gallery picks."),
    workers: int = typer.Option(4, "--workers", help="Threads decoding images."),
) -> None:
    """Explore a dataset: counts, class balance, defect areas, where defects fall, brightness, mask overlays."""
    from steelinspect.eda.report import write_report
    from steelinspect.eda.stats import EdaConfig, progress_total

    config = EdaConfig(sample=sample, seed=seed, workers=workers, gallery_per_class=per_class)
    config.validate()
    with progress_bar("analysing", progress_total(data, config)) as advance:
        path = write_report(data, report_dir, config, on_step=advance)
    out.print(f"wrote {path} (numbers in {report_dir / 'stats.json'}, figures beside it)")


def show(
    data: Path = typer.Argument(..., help="DATA_DIR holding train.csv and train_images/."),
    image_id: str = typer.Argument(..., help="Image file name, e.g. 0002cc93b.jpg."),
    out_png: Path = typer.Option(None, "--out", help="PNG to write (default: IMAGE_ID.png here)."),
) -> None:
    """Render one image with its masks in the class colours."""
    from steelinspect.eda.show import render_image

    path = render_image(data, image_id, out_png or Path(Path(image_id).stem + ".png"))
    out.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command()(eda)
    app.command()(show)
