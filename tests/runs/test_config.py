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


def test_sampler_and_loss_defaults_and_what_an_older_config_trained_with():
    from steelinspect.runs.config import LOSSES

    for task in TASKS:
        config = TrainConfig(task=task, data=Path("d"), out=Path("o"))
        assert config.sampler == default("sampler", task) and config.loss == default("loss", task) in LOSSES[task]
        old = {k: v for k, v in config.to_dict().items() if k not in ("sampler", "loss")}
        legacy = TrainConfig.from_dict(old)  # a config.json written before --sampler and --loss
        assert (legacy.sampler, legacy.loss) == ("natural", "bce_dice" if task == "segment" else "bce")


def test_step_2_draws_class_balanced_unless_seed_protocol_or_pseudo_labels():
    def sampler(task, **options):
        return TrainConfig(task=task, data=Path("d"), out=Path("o"), **options).sampler

    assert sampler("multiclass") == "balanced"
    assert sampler("binary") == sampler("segment") == "natural"
    assert sampler("multiclass", protocol="seed") == "natural"  # N images per class are balanced already
    assert sampler("multiclass", pseudo=Path("p"), teacher=Path("t")) == "natural"
    assert sampler("multiclass", sampler="natural") == "natural"  # an explicit choice wins


def test_step_2_trains_with_the_focal_loss_unless_seed_protocol():
    def loss(task, **options):
        return TrainConfig(task=task, data=Path("d"), out=Path("o"), **options).loss

    assert loss("multiclass") == "focal"
    assert loss("binary") == "bce" and loss("segment") == "bce_dice"
    assert loss("multiclass", protocol="seed") == "bce"  # the capstone's softmax head keeps cross-entropy
    assert loss("multiclass", pseudo=Path("p"), teacher=Path("t")) == "focal"
    assert loss("multiclass", loss="bce") == "bce"  # an explicit choice wins
