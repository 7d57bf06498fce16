"""Training with pseudo-labels, the library API (the CLI's train commands call it): label, then train.

The labels are made before training starts and written to RUN_DIR/pseudo.json; the training loop (train/) reads
them from there and mixes them into every batch (train/pseudo_data.py), so --resume reuses them as they were.
Under torchrun every process labels (each on its own GPU: no process waits on another's labelling longer than
its own) and rank 0 alone writes the file, which every process then reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from steelinspect.data.master import build_master
from steelinspect.data.layout import data_dir
from steelinspect.data.splits import make_splits
from steelinspect.device import resolve_device
from steelinspect.errors import ConfigError
from steelinspect.infer.config import PredictConfig
from steelinspect.pseudo.label import label_images
from steelinspect.pseudo.teacher import Teacher
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.files import CHECKPOINT_FILE, MODEL_FILE, PSEUDO_FILE
from steelinspect.runs.pseudo import has_pseudo, read_pseudo, write_pseudo
from steelinspect.runs.store import check_not_trained_on
from steelinspect.train.loop import train as train_loop


def train(config: TrainConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """train.loop.train, after pseudo-labelling when config.pseudo is set."""
    if config.pseudo is not None:
        make_pseudo_labels(config, log)
    return train_loop(config, progress=progress, log=log)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _device(name: str) -> str:
    """Under torchrun on CUDA, this process's own GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and resolve_device(name).type == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return name


def make_pseudo_labels(config: TrainConfig, log: Callable[[str], None] | None = None) -> dict | None:
    """Label config.pseudo's images with config.teacher and write RUN_DIR/pseudo.json; the record.

    --resume keeps the run's pseudo.json. ConfigError when no image passes the thresholds (pseudo.json is still
    written, with every image's confidence and why it was left out), or when the teacher does not fit the task
    or trained on this run's validation or test images.
    """
    say = (log or (lambda _msg: None)) if _rank() == 0 else (lambda _msg: None)
    config.validate()
    out = Path(config.out)
    if config.resume:
        if has_pseudo(out):
            record = read_pseudo(out)
            say(f"pseudo-labels: reusing {out / PSEUDO_FILE} ({len(record['kept'])} images)")
            return record
        return None  # the loop says what is missing
    if (out / MODEL_FILE).exists() or (out / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    images_dir = Path(config.pseudo)
    if not images_dir.is_dir():
        raise ConfigError("--pseudo needs a folder of images", images_dir)
    predict = PredictConfig(batch_size=config.batch_size, workers=max(1, config.workers),
                            device=_device(config.device), engine="torch")
    teacher = Teacher.from_run(config.teacher, predict)
    wanted = config.head
    if teacher.head != wanted:
        raise ConfigError(f"--teacher must be a {wanted} run like the model it teaches; {config.teacher} is "
                          f"{teacher.head}")
    gate = Teacher.from_run(config.pseudo_gate, predict) if config.pseudo_gate else None
    if gate is not None and gate.head != "binary":
        raise ConfigError(f"--pseudo-gate must be a binary (step 1) run; {config.pseudo_gate} is {gate.head}")
    splits = make_splits(build_master(config.data), config.head, config.protocol, config.per_class, config.seed,
                         config.val_fraction, config.test_fraction)
    held_out = [*splits["val"].ImageId, *splits["test"].ImageId]
    check_not_trained_on(config.teacher, held_out, "--teacher run")
    if gate is not None:
        check_not_trained_on(config.pseudo_gate, held_out, "--pseudo-gate run")
    say(f"pseudo-labelling {images_dir} with {config.teacher}" + (f" (gate {config.pseudo_gate})" if gate else ""))
    record = label_images(images_dir, data_dir(config.data).images, config.task, teacher, config.pseudo_confidence,
                          config.pseudo_share, config.pseudo_pixel_share, gate)
    target = out / PSEUDO_FILE
    if _rank() == 0:
        write_pseudo(out, record)
    counts = record["counts"]
    if not record["kept"]:
        best = max((r["confidence"] for r in record["rejected"]), default=None)
        raise ConfigError(
            f"--pseudo: none of the {counts['images']} images passed ({counts['rejected']} below the thresholds"
            + (f", the best at {best:.4f}" if best is not None else "") + f", {counts['excluded']} left out); "
            f"lower --pseudo-confidence{' or --pseudo-pixel-share' if config.task == 'segment' else ''}, or "
            f"train without --pseudo. Every image's confidence is in {target}")
    say(f"pseudo-labels: {counts['kept']} of {counts['images']} images kept ({counts['rejected']} not confident, "
        f"{counts['excluded']} left out); recorded in {target}")
    return record
