"""Training defaults live in runs/config.py only: default() answers what TrainConfig does."""

from pathlib import Path

from steelinspect.runs.config import TASKS, TrainConfig, default


def test_default_is_what_a_config_left_alone_gets():
    for task in TASKS:
        config = TrainConfig(task=task, data=Path("d"), out=Path("o"))
        for name in ("epochs", "batch_size", "lr", "image_size", "arch", "seed", "device", "workers", "protocol",
                     "per_class", "crop_width", "weights", "init", "resume"):
            assert default(name, task) == getattr(config, name), (task, name)
    assert default("batch_size", "segment") == 8 and default("arch", "binary") == "vgg"
