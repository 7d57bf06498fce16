"""Export command: a run's model to ONNX, optionally also quantized to int8 (accuracy-guarded)."""

from __future__ import annotations

from pathlib import Path

import typer

from steelinspect.cli.console import out
from steelinspect.infer.config import DEFAULT_TOLERANCE_DICE, DEFAULT_TOLERANCE_F1


def export(
    run_dirs: list[Path] = typer.Argument(..., help="Run directory of a trained model, a --folds parent or several "
                                          "run directories: each member is exported (and guarded) on its own."),
    fmt: str = typer.Option("onnx", "--format", help="Only onnx for now."),
    int8: bool = typer.Option(False, "--int8", help="Also write model.int8.onnx (ONNX Runtime static "
                              "quantization), kept only if it scores within the tolerance of float on the run's "
                              "validation split."),
    calibration: int = typer.Option(32, "--calibration", help="Validation images to calibrate activations on."),
    activations: str = typer.Option("auto", "--activations", help="auto (u8 on x86, s8 elsewhere), u8 or s8."),
    keep_float: str = typer.Option("ends", "--keep-float", help="ends (first conv and the logits layer stay "
                                   "float) or none."),
    tolerance_f1: float = typer.Option(DEFAULT_TOLERANCE_F1, "--tolerance-f1",
                                       help="Largest validation F1 drop allowed (classifiers)."),
    tolerance_dice: float = typer.Option(DEFAULT_TOLERANCE_DICE, "--tolerance-dice",
                                         help="Largest validation Kaggle Dice drop allowed (segmenter)."),
    data: Path = typer.Option(None, "--data", help="The run's dataset, if it has moved (default: the one in "
                              "its config.json)."),
) -> None:
    """Write RUN_DIR/model.onnx (dynamic batch, preprocessing in its metadata), checked against PyTorch; with
    --int8 also RUN_DIR/model.int8.onnx, checked against the float model's validation score."""
    from steelinspect.errors import ConfigError
    from steelinspect.infer.export import export_onnx
    from steelinspect.infer.config import Int8Config
    from steelinspect.infer.quantize import export_int8

    if fmt != "onnx":
        raise ConfigError(f"--format {fmt!r} is not supported; use onnx")
    config = Int8Config(calibration=calibration, activations=activations, keep_float=keep_float,
                        tolerance_f1=tolerance_f1, tolerance_dice=tolerance_dice,
                        data=str(data) if data else None)
    config.validate()  # before the float export, so a bad option changes nothing
    from steelinspect.runs.ensemble import member_dirs

    # An ensemble is exported member by member: each member's graph is checked against its own weights and, with
    # --int8, guarded on its own validation split (a fold member's: its fold).
    for run_dir in member_dirs(run_dirs):
        report = export_onnx(run_dir)
        out.print(f"wrote {report.path}; ONNX Runtime matches PyTorch within {report.max_abs_diff:.1e} "
                  f"on a {report.checked_shape} batch")
        if int8:
            q = export_int8(run_dir, config)
            out.print(f"wrote {q.path} ({q.activations.upper()}S8, calibrated on {q.calibration} images); validation "
                      f"{q.metric} int8 {q.int8_score:.4f} vs float {q.float_score:.4f} ({q.delta:+.4f}, tolerance "
                      f"{q.tolerance:g}) on {q.images} images")


def register(app: typer.Typer) -> None:
    app.command()(export)
