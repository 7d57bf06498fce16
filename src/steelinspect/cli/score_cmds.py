"""`steelinspect score`: the Kaggle metric of a submission against a labelled dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from steelinspect.cli.console import out
from steelinspect.metrics.dice import SCORE_COLUMNS, DiceReport


def score(
    submission: Path = typer.Argument(..., help="Submission or label file, either Kaggle format (columns in any order)."),
    truth: Path = typer.Option(..., "--truth", help="Labelled DATA_DIR (train.csv + train_images/) to score against."),
    all_images: bool = typer.Option(
        False,
        "--all-images",
        help="Score every image of DATA_DIR; images the file does not name count as empty predictions "
        "(use for a label file in the newer format, which lists defect rows only).",
    ),
) -> None:
    """Mean Dice over every (image, class) pair, per-class table, and the all-empty baseline."""
    from steelinspect.infer.submission import score_submission

    result = score_submission(submission, truth, all_images=all_images)
    out.print(score_table(result.report, title=f"{submission} ({result.format} format) vs {truth}"))
    report = result.report
    out.print(
        f"Kaggle Dice: {report.dice_kaggle:.4f} over {report.images} images "
        f"({report.images * len(report.classes)} image-class pairs)"
    )
    out.print(
        f"all-empty submission: {report.dice_empty_baseline:.4f}  "
        f"(margin {report.margin:+.4f})"
    )
    if result.unscored_truth_images:
        out.print(
            f"note: {result.unscored_truth_images} of the {result.truth_images} images in {truth} are not in "
            "the file and were not scored (--all-images counts them as empty predictions)"
        )


def score_table(report: DiceReport, title: str | None = None) -> Table:
    """Per-class table: Dice over every image, over the images with that defect (positive-only), how many
    images have it and how many were predicted to, and what an empty prediction scores."""
    table = Table(title=title)
    for col in SCORE_COLUMNS:
        table.add_column(col, justify="right")
    *classes, total = report.score_rows()
    for row in classes:
        table.add_row(*(_cell(v, "-") for v in row))
    table.add_row(*(_cell(v, "") for v in total), style="bold")
    return table


def _cell(value, none: str) -> str:
    return none if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    app.command()(score)
