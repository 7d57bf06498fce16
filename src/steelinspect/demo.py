"""The end-to-end demo on the synthetic default: each stage calls the library the CLI calls.

Stages: synth -> check -> master -> EDA -> train step 1, step 2 (started from step 1) and the segmenter ->
re-tune the segmenter's post-processing with the classifiers gating it -> export to ONNX -> predict on held-out images (cascade + segmenter: predictions, Kaggle submission, overlays; every verdict also recorded in
the inspection log as the frames of one coil) -> score the cascade and the submission -> one report with every
stage's figures and tables, a reviewer's token, and the command that serves the trained models with the log (the
Review tab). Running it again reuses what is finished (and resumes an interrupted training run).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from steelinspect.errors import DataError
from steelinspect.runs.files import CHECKPOINT_FILE, CONFIG_FILE, CURVES_FILE, METRICS_FILE
from steelinspect.runs.store import read_metrics

Log = Callable[[str], None]
DEMO_COIL = "DEMO-1"
DEMO_REVIEWER = "demo"


@dataclass
class DemoConfig:
    out: Path = Path("runs/demo")
    images: int = 400  # training set (the held-out set is a quarter of it, generated with another seed)
    seed: int = 0
    # Classifiers at half the default height: the demo must finish in minutes on 2 CPU cores.
    image_size: tuple[int, int] = (128, 512)
    epochs: int = 10
    arch: str = "vgg"
    # The segmenter works at half the full size (at a quarter the rough texture of class 4 is lost), trained on
    # narrow random crops; it predicts whole images.
    seg_image_size: tuple[int, int] = (128, 800)
    seg_crop_width: tuple[int, int] = (128, 160)
    seg_epochs: int = 8
    seg_arch: str = "unet_resnet18"
    workers: int = 2


@dataclass
class DemoResult:
    outputs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)
    serve_command: str = ""
    token: str = ""  # the demo reviewer's token (a new one each run: only its hash is kept)
    bands: dict[str, int] = field(default_factory=dict)  # frames of the demo coil in each band


def _dataset(path: Path, images: int, seed: int, log: Log) -> Path:
    from steelinspect.data.synth import generate

    if (path / "train.csv").is_file():
        log(f"    reusing {path}")
        return path
    log(f"    generating {images} images (seed {seed}) in {path}")
    return generate(path, images=images, seed=seed)


def _train(config, log: Log) -> Path:
    """Train, or reuse a finished run made with the same settings, or resume an interrupted one."""
    from steelinspect.errors import ConfigError
    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.loop import train

    run_dir = Path(config.out)
    if (run_dir / METRICS_FILE).is_file():
        changed = config.changes_from(TrainConfig.read(run_dir / CONFIG_FILE), ignore=("resume", "workers", "device"))
        if changed:
            raise ConfigError(f"{run_dir} holds a run made with other settings ({'; '.join(changed)}); delete it or "
                              "choose another --out")
        log(f"    reusing finished run {run_dir}")
        return run_dir
    config.resume = (run_dir / CHECKPOINT_FILE).is_file()
    return train(config, progress=True, log=lambda m: log(f"    {m}"))


def _metrics_table(metrics: dict, keys=("loss", "accuracy", "precision", "recall", "f1", "roc_auc")) -> pd.DataFrame:
    rows = [[split] + [metrics[split].get(k) for k in keys] for split in ("train", "val", "test") if metrics.get(split)]
    return pd.DataFrame(rows, columns=["split", *keys]).astype({k: float for k in keys})


def _dice_table(metrics: dict) -> pd.DataFrame:
    """Kaggle Dice per split of a segment run, beside the all-empty baseline and per class."""
    rows = []
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            rows.append([split, m["dice_kaggle"], m["dice_empty_baseline"],
                         *(m["dice_per_class"][str(c)] for c in (1, 2, 3, 4))])
    return pd.DataFrame(rows, columns=["split", "Kaggle Dice", "all-empty", *(f"class {c}" for c in (1, 2, 3, 4))])


def _score_table(report) -> pd.DataFrame:
    """The per-class table `steelinspect score` prints."""
    from steelinspect.metrics.dice import SCORE_COLUMNS

    return pd.DataFrame(report.score_rows(), columns=list(SCORE_COLUMNS))


def _cascade_table(metrics: dict) -> pd.DataFrame:
    """The table `steelinspect evaluate-cascade` prints."""
    from steelinspect.metrics.cascade import CASCADE_COLUMNS, cascade_rows

    return pd.DataFrame(cascade_rows(metrics), columns=list(CASCADE_COLUMNS))


def _examples(master: pd.DataFrame, predicted: dict[str, list[str]], k: int, seed: int) -> pd.DataFrame:
    """Held-out images for the truth-vs-prediction gallery: those with a true or predicted defect first."""
    rng = np.random.default_rng(seed)
    busy = master.Defect | master.ImageId.map(lambda i: any(predicted.get(i, [])))
    order = [*rng.permutation(np.flatnonzero(busy)), *rng.permutation(np.flatnonzero(~busy))]
    return master.iloc[order[:k]]


def _tune_gate(runs: dict[str, Path], data: Path, log: Log) -> dict:
    """Re-tune once; a finished demo keeps its setting (metrics.json's "gated")."""
    from steelinspect.tuning.gate import tune_with_gate

    metrics = read_metrics(runs["segment"])
    if "gated" in metrics:
        log("    reusing the re-tuned setting")
        return metrics["gated"]
    gated = tune_with_gate(runs["segment"], runs["binary"], runs["multiclass"], data).to_dict()
    log(f"    test Kaggle Dice {gated['alone']['dice_kaggle']:.4f} alone, {gated['gated']['dice_kaggle']:.4f} gated, "
        f"{gated['gated_tuned']['dice_kaggle']:.4f} gated and re-tuned (all-empty "
        f"{gated['alone']['dice_empty_baseline']:.4f})")
    return gated


def _gate_table(gated: dict) -> pd.DataFrame:
    """Test-split Kaggle Dice: all-empty, the segmenter alone, gated, gated and re-tuned (and per class)."""
    alone = gated["alone"]
    rows = [["all-empty submission", alone["dice_empty_baseline"], *[None] * 4]]
    for key, label in (("alone", "segmenter alone (tuned alone)"), ("gated", "gated, tuned alone"),
                       ("gated_tuned", "gated, re-tuned with the gate")):
        rows.append([label, gated[key]["dice_kaggle"], *(gated[key]["dice_per_class"][str(c)] for c in (1, 2, 3, 4))])
    return pd.DataFrame(rows, columns=["test split", "Kaggle Dice", *(f"class {c}" for c in (1, 2, 3, 4))])


def _export(runs: dict[str, Path], log: Log) -> None:
    """ONNX Runtime runs exported models on the CPU (`--engine auto`); skipped when it is not installed."""
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):  # pragma: no cover - make demo installs them
        log("    onnx / onnxruntime not installed: predicting with PyTorch")
        return
    from steelinspect.infer.export import export_onnx

    for name, run_dir in runs.items():
        report = export_onnx(run_dir)
        log(f"    {name}: {report.path} (largest difference from PyTorch {report.max_abs_diff:.1e})")


def run_demo(config: DemoConfig, log: Log = print) -> DemoResult:
    """Every stage in order (numbered as the log numbers them); one report; the command that serves the runs."""
    out = Path(config.out)
    result = DemoResult()
    data, holdout = _data_stages(config, out, result, log)  # [1]-[3]
    report = _eda_stage(config, data, out, log)  # [4]
    runs = _train_stages(config, data, out, report, result, log)  # [5]-[7]
    _gate_stage(runs, data, report, result, log)  # [8]
    log("[9] export to ONNX (ONNX Runtime predicts on the CPU)")
    _export(runs, log)
    outputs, images = _predict_stage(runs, holdout, out, result, log)  # [10]
    _score_stage(config, holdout, outputs, images, out, report, result, log)  # [11]
    report.write(out / "report" / "report.html")
    result.outputs["report"] = out / "report" / "report.html"
    result.serve_command = (f"steelinspect serve --binary {runs['binary']} --multiclass {runs['multiclass']} "
                            f"--segment {runs['segment']} --data {holdout}")
    if "inspection log" in result.outputs:
        result.token = _reviewer_token(out / "tokens.txt")
        result.outputs["tokens"] = out / "tokens.txt"
        result.serve_command += f" --db {_log_url(out)} --token-file {out / 'tokens.txt'}"
    return result


def _log_url(out: Path) -> str:
    return f"sqlite:///{out / 'inspections.db'}"


def _reviewer_token(path: Path) -> str:
    """A new token for the demo reviewer (the file keeps only hashes, so an earlier token cannot be shown again;
    it stops working)."""
    from steelinspect.serve.tokens import add_token, list_names, remove_token

    if path.exists() and DEMO_REVIEWER in list_names(path):
        remove_token(path, DEMO_REVIEWER)
    return add_token(path, DEMO_REVIEWER)


def _data_stages(config: DemoConfig, out: Path, result: DemoResult, log: Log) -> tuple[Path, Path]:
    """The training and held-out data, both checked; the training data's master table."""
    from steelinspect.data.check import check_dataset
    from steelinspect.data.master import build_master, write_master

    log("[1] synthetic data")
    data = _dataset(out / "data", config.images, config.seed, log)
    holdout = _dataset(out / "holdout", max(config.images // 4, 20), config.seed + 1000, log)
    result.outputs["data"] = data
    result.outputs["held-out data"] = holdout

    log("[2] check: validating both datasets")
    for path in (data, holdout):
        check = check_dataset(path)
        if not check.ok:
            raise DataError(check.problems)
        log(f"    {path.name}: {check.images} images, {check.label_rows} masks, no problems")

    log("[3] master table")
    master = build_master(data)
    write_master(master, out / "master.csv")
    log(f"    {int(master.Defect.sum())} of {len(master)} images have defects")
    result.outputs["master table"] = out / "master.csv"
    return data, holdout


def _eda_stage(config: DemoConfig, data: Path, out: Path, log: Log):
    """The EDA report, which the later stages add their sections to."""
    from steelinspect.eda.report import eda_report
    from steelinspect.eda.stats import EdaConfig

    log("[4] EDA report")
    report, stats = eda_report(data, out / "report", EdaConfig(seed=config.seed))
    log(f"    masks per class {stats.masks_per_class}")
    return report


TITLES = {"binary": "Step 1: defect or clean (binary)", "multiclass": "Step 2: which class (multi-label)",
          "segment": "Segmentation: where each defect is (UNet)"}


def _train_stages(config: DemoConfig, data: Path, out: Path, report, result: DemoResult, log: Log) -> dict[str, Path]:
    """Step 1, step 2 (started from step 1) and the segmenter, each with its section of the report."""
    from steelinspect.runs.config import TrainConfig

    runs: dict[str, Path] = {}
    common = dict(data=data, seed=config.seed, workers=config.workers)
    plans = [
        ("5", "binary", TrainConfig(task="binary", out=out / "runs" / "binary", epochs=config.epochs,
                                    image_size=config.image_size, arch=config.arch, **common)),
        # Step 2 starts from step 1's weights: with a few hundred defect images it learns much faster that way.
        ("6", "multiclass", TrainConfig(task="multiclass", out=out / "runs" / "multiclass", epochs=config.epochs,
                                        image_size=config.image_size, arch=config.arch,
                                        init=out / "runs" / "binary", **common)),
        ("7", "segment", TrainConfig(task="segment", out=out / "runs" / "segment", epochs=config.seg_epochs,
                                     image_size=config.seg_image_size, crop_width=config.seg_crop_width,
                                     arch=config.seg_arch, batch_size=8, **common)),
    ]
    for step, task, train_config in plans:
        h, w = train_config.image_size
        log(f"[{step}] train {task} ({train_config.arch}, {h}x{w}, {train_config.epochs} epochs)")
        runs[task] = _train(train_config, log)
        metrics = read_metrics(runs[task])
        result.metrics[task] = metrics
        result.outputs[f"{task} run"] = runs[task]
        report.heading(TITLES[task])
        if task == "segment":
            test = metrics["test"]
            log(f"    test Kaggle Dice {test['dice_kaggle']:.4f} (all-empty {test['dice_empty_baseline']:.4f})")
            report.table(_dice_table(metrics), float_format="{:.4f}")
            report.paragraph(f"Post-processing tuned on validation: thresholds {metrics['postprocess']['thresholds']}, "
                             f"minimum areas {metrics['postprocess']['min_areas']} pixels (at 256x1600).", note=True)
        else:
            log(f"    test F1 {metrics['test']['f1']:.3f}, accuracy {metrics['test']['accuracy']:.3f}")
            report.table(_metrics_table(metrics))
        report.image(runs[task] / CURVES_FILE, "loss and score per epoch, train vs validation")
    return runs


def _gate_stage(runs: dict[str, Path], data: Path, report, result: DemoResult, log: Log) -> None:
    log("[8] re-tune the segmenter's post-processing with the classifiers gating it")
    gated = _tune_gate(runs, data, log)
    report.heading("Segmentation gated by the classifiers")
    report.paragraph("The test split of the segment run, scored with the competition's metric. Gating: no masks on "
                     "images step 1 calls clean, and only the classes step 2 chose. Re-tuned: thresholds and minimum "
                     "areas tuned again on the validation split with the gate applied (what prediction uses).")
    report.table(_gate_table(gated), float_format="{:.4f}")
    result.metrics["gated"] = gated


def _predict_stage(runs: dict[str, Path], holdout: Path, out: Path, result: DemoResult, log: Log):
    """Cascade + segmenter over the held-out images: predictions, submission, overlays (and how many images)."""
    from steelinspect.infer.cascade import PredictConfig
    from steelinspect.infer.segment_predict import PipelineOutputs, predict_pipeline

    log("[10] predict on held-out images: cascade + segmenter, every verdict into the inspection log")
    outputs = PipelineOutputs(out / "predictions.csv", out / "submission.csv", out / "overlays")
    predict_config = PredictConfig(batch_size=8, workers=2)
    with _demo_sink(out, log) as sink:
        stats_p = predict_pipeline(holdout / "train_images", runs["binary"], runs["multiclass"], runs["segment"],
                                   outputs, predict_config, sink=sink)
        if sink is not None:
            sink.flush()
            log(f"    logged {sink.recorded} inspections as the frames of coil {DEMO_COIL} in {sink.log.shown_url}")
    log(f"    {stats_p.images} images at {stats_p.images_per_s:.1f} images/s; {stats_p.defects} called defective")
    if _has_db_extra():
        from steelinspect.inspect_log import LogFilter, open_log

        with open_log(_log_url(out)) as inspections:
            result.bands = inspections.band_counts(LogFilter(coil=DEMO_COIL))
        result.outputs["inspection log"] = out / "inspections.db"
        log("    bands: " + ", ".join(f"{band} {n}" for band, n in result.bands.items()))
    result.outputs.update({"predictions": outputs.predictions, "submission": outputs.submission,
                           "overlays": outputs.overlays})
    return outputs, stats_p.images


def _has_db_extra() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("sqlalchemy", "alembic"))


@contextmanager
def _demo_sink(out: Path, log: Log) -> Iterator:
    """The inspection log's sink for the prediction stage; None (predict without logging) when the db extra is
    missing or the log holds the demo coil already (a second run keeps the first run's frames and their reviews)."""
    if not _has_db_extra():  # pragma: no cover - make demo installs it
        log("    the db extra is not installed: no inspection log (pip install 'steelinspect[db]')")
        yield None
        return
    from steelinspect.inspect_log import LogFilter, open_log
    from steelinspect.inspect_log.sink import LogSink

    with open_log(_log_url(out)) as inspections:
        logged = inspections.count(LogFilter(coil=DEMO_COIL))
        if logged:
            log(f"    reusing the inspection log ({logged} frames of coil {DEMO_COIL})")
            yield None
            return
        with LogSink(inspections, coil=DEMO_COIL, batch=32) as sink:
            yield sink


def _score_stage(config: DemoConfig, holdout: Path, outputs, images: int, out: Path, report, result: DemoResult,
                 log: Log) -> None:
    """The cascade's and the submission's scores on the held-out images, and a gallery of truth vs prediction."""
    from steelinspect.data.master import build_master
    from steelinspect.eda import gallery
    from steelinspect.eda.figures import example_figure
    from steelinspect.infer.submission import read_submission, score_submission
    from steelinspect.metrics.cascade import evaluate_cascade

    log("[11] score on held-out images")
    predictions, submission, overlays = outputs.predictions, outputs.submission, outputs.overlays
    table = pd.read_csv(predictions, keep_default_na=False)
    holdout_master = build_master(holdout)
    cascade_metrics = evaluate_cascade(table, holdout_master)
    scored = score_submission(submission, holdout).report
    result.metrics["cascade"] = cascade_metrics
    result.metrics["submission"] = scored.to_dict()
    log(f"    step 1 F1 {cascade_metrics['step1']['f1']:.3f}, end-to-end class F1 "
        f"{cascade_metrics['end_to_end']['f1']:.3f}; Kaggle Dice {scored.dice_kaggle:.4f} against "
        f"{scored.dice_empty_baseline:.4f} for an all-empty submission")

    report.heading("On held-out images")
    report.paragraph(f"{images} images none of the models saw, generated with another seed: "
                     f"{cascade_metrics['missed_by_step1']} defect images missed by step 1, "
                     f"{cascade_metrics['false_alarms_step1']} clean images flagged.")
    report.table(_cascade_table(cascade_metrics))
    report.paragraph(f"The submission ({submission.name}) scored with the competition's metric: Kaggle Dice "
                     f"{scored.dice_kaggle:.4f}; an all-empty submission scores {scored.dice_empty_baseline:.4f} "
                     f"on the same images (margin {scored.margin:+.4f}).")
    report.table(_score_table(scored), float_format="{:.4f}")
    predicted = read_submission(submission).masks
    panels, _ = gallery.panels(_examples(holdout_master, predicted, 6, config.seed), holdout / "train_images", predicted)
    figure = example_figure(panels, "Held-out images: truth (top) and prediction (bottom)",
                            out / "report" / "predictions.png")
    report.image(figure, "Masks in the class colours; more overlays in " + overlays.name + "/")
    report.paragraph("First predictions:", note=True).table(table.head(10))
