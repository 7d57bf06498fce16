"""The end-to-end demo on the synthetic default: each stage calls the library the CLI calls.

Stages so far: synth -> check -> master. Later capabilities append their stage here.
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
    return result
