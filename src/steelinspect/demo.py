"""The end-to-end demo on the synthetic default: each stage calls the library the CLI calls.

Stages: synth -> check -> master -> EDA report. Later capabilities append their stage here; the report
collects every stage's figures and tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from steelinspect.errors import DataError


@dataclass
class DemoConfig:
    out: Path = Path("runs/demo")
    images: int = 400
    seed: int = 0


@dataclass
class DemoResult:
    outputs: dict[str, Path] = field(default_factory=dict)


def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> DemoResult:
    from steelinspect.data.check import check_dataset
    from steelinspect.data.master import build_master, write_master
    from steelinspect.data.synth import generate
    from steelinspect.eda.report import eda_report
    from steelinspect.eda.stats import EdaConfig

    out = Path(config.out)
    result = DemoResult()
    data = out / "data"
    if (data / "train.csv").is_file():
        log(f"[1] synthetic data: reusing {data}")
    else:
        log(f"[1] synthetic data: generating {config.images} images (seed {config.seed}) in {data}")
        generate(data, images=config.images, seed=config.seed)
    result.outputs["data"] = data

    log("[2] check: validating the dataset")
    report = check_dataset(data)
    if not report.ok:
        raise DataError(report.problems)
    log(f"    {report.images} images, {report.label_rows} masks, no problems")

    log("[3] master table")
    master = build_master(data)
    write_master(master, out / "master.csv")
    log(f"    {int(master.Defect.sum())} of {len(master)} images have defects")
    result.outputs["master table"] = out / "master.csv"

    log("[4] EDA report")
    report, stats = eda_report(data, out / "report", EdaConfig(seed=config.seed))
    log(f"    masks per class {stats.masks_per_class}")

    report.write(out / "report" / "report.html")
    result.outputs["report"] = out / "report" / "report.html"
    return result
