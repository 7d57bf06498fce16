"""The end-to-end demo on the synthetic default: each stage calls the library the CLI calls.

Stages: synth -> check -> master -> EDA -> train step 1 and step 2 -> evaluate -> predict and score the
cascade on held-out images -> one report with every stage's figures and tables. Running it again reuses what
is finished (and resumes an interrupted training run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from steelinspect.errors import DataError

Log = Callable[[str], None]


@dataclass
class DemoConfig:
    out: Path = Path("runs/demo")
    images: int = 400  # training set (the held-out set is a quarter of it, generated with another seed)
    seed: int = 0
    image_size: tuple[int, int] = (128, 512)  # half the default height: the demo must finish in minutes on CPU
    epochs: int = 6
    arch: str = "vgg"
    workers: int = 2


@dataclass
class DemoResult:
    outputs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)


def _dataset(path: Path, images: int, seed: int, log: Log) -> Path:
    from steelinspect.data.synth import generate

    if (path / "train.csv").is_file():
        log(f"    reusing {path}")
        return path
    log(f"    generating {images} images (seed {seed}) in {path}")
    return generate(path, images=images, seed=seed)


def _train(config, log: Log) -> Path:
    """Train, or reuse a finished run, or resume an interrupted one."""
    from steelinspect.train.loop import train

    run_dir = Path(config.out)
    if (run_dir / "metrics.json").is_file():
        log(f"    reusing finished run {run_dir}")
        return run_dir
    config.resume = (run_dir / "checkpoint.pt").is_file()
    return train(config, progress=True, log=lambda m: log(f"    {m}"))


def _metrics_table(metrics: dict, keys=("loss", "accuracy", "precision", "recall", "f1", "roc_auc")) -> pd.DataFrame:
    rows = [[split] + [metrics[split].get(k) for k in keys] for split in ("train", "val", "test") if metrics.get(split)]
    return pd.DataFrame(rows, columns=["split", *keys]).astype({k: float for k in keys})


def _cascade_table(metrics: dict) -> pd.DataFrame:
    rows = [["step 1: defect vs clean", metrics["step1"]["precision"], metrics["step1"]["recall"], metrics["step1"]["f1"]]]
    for stage, label in (("step2", "step 2: classes on images step 1 passed"), ("end_to_end", "end to end: classes")):
        m = metrics[stage]
        rows.append([label, m["precision"], m["recall"], m["f1"]])
        rows += [[f"   class {c}", pc["precision"], pc["recall"], pc["f1"]] for c, pc in m["per_class"].items()]
    return pd.DataFrame(rows, columns=["stage", "precision", "recall", "f1"])


def run_demo(config: DemoConfig, log: Log = print) -> DemoResult:
    import json

    from steelinspect.data.check import check_dataset
    from steelinspect.data.master import build_master, write_master
    from steelinspect.eda.report import eda_report
    from steelinspect.eda.stats import EdaConfig
    from steelinspect.infer.cascade import Cascade, PredictConfig, PredictStats, predict, write_predictions
    from steelinspect.metrics.cascade import evaluate_cascade
    from steelinspect.train.config import TrainConfig

    out = Path(config.out)
    result = DemoResult()

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

    log("[4] EDA report")
    report, stats = eda_report(data, out / "report", EdaConfig(seed=config.seed))
    log(f"    masks per class {stats.masks_per_class}")

    runs = {}
    for step, task in (("5", "binary"), ("6", "multiclass")):
        log(f"[{step}] train {task} ({config.arch}, {config.image_size[0]}x{config.image_size[1]}, {config.epochs} epochs)")
        train_config = TrainConfig(task=task, data=data, out=out / "runs" / task, epochs=config.epochs,
                                   image_size=config.image_size, arch=config.arch, seed=config.seed,
                                   workers=config.workers, batch_size=16)
        runs[task] = _train(train_config, log)
        metrics = json.loads((runs[task] / "metrics.json").read_text())
        result.metrics[task] = metrics
        log(f"    test F1 {metrics['test']['f1']:.3f}, accuracy {metrics['test']['accuracy']:.3f}")
        result.outputs[f"{task} run"] = runs[task]
        report.heading(f"Step {'1: defect or clean' if task == 'binary' else '2: which class'} ({task})")
        report.table(_metrics_table(metrics)).image(runs[task] / "curves.png", "loss and F1 per epoch")

    log("[7] predict and score the cascade on held-out images")
    predict_config = PredictConfig(batch_size=16, workers=2)
    cascade = Cascade.from_runs(runs["binary"], runs["multiclass"], predict_config)
    stats_p = PredictStats()
    predictions = out / "predictions.csv"
    write_predictions(predict(holdout / "train_images", cascade, predict_config, stats_p), predictions)
    table = pd.read_csv(predictions, keep_default_na=False)
    cascade_metrics = evaluate_cascade(table, build_master(holdout))
    result.metrics["cascade"] = cascade_metrics
    log(f"    {stats_p.images} images at {stats_p.images_per_s:.1f} images/s; step 1 F1 "
        f"{cascade_metrics['step1']['f1']:.3f}, end-to-end class F1 {cascade_metrics['end_to_end']['f1']:.3f}")
    result.outputs["predictions"] = predictions
    report.heading("The cascade on held-out images")
    report.paragraph(f"{stats_p.images} images never seen in training; {cascade_metrics['missed_by_step1']} defect "
                     f"images missed by step 1, {cascade_metrics['false_alarms_step1']} clean images flagged.")
    report.table(_cascade_table(cascade_metrics))
    report.paragraph("First predictions:", note=True).table(table.head(10))

    report.write(out / "report" / "report.html")
    result.outputs["report"] = out / "report" / "report.html"
    return result
