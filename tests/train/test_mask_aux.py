"""`train ... --mask-aux W`: the classifier also learns where the masks lie, and is saved as a plain classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steelinspect.errors import ConfigError
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.store import load_run
from steelinspect.train.loop import train
from tests.cli_runner import run_main
from tests.train.interrupt import interrupted

SMALL = dict(task="multiclass", epochs=2, batch_size=8, image_size=(64, 128), workers=0, arch="vgg", seed=0)


def _history(run) -> list[float]:
    return [h[key] for h in json.loads((run / "history.json").read_text()) for key in ("train_loss", "val_loss")]


def _state(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=True)["state_dict"]


def test_a_run_with_the_mask_loss_learns_otherwise_saves_a_plain_model_and_resumes_exactly(synth_dir, tmp_path,
                                                                                            monkeypatch):
    masked = train(TrainConfig(data=synth_dir, out=tmp_path / "masked", mask_aux=1.0, **SMALL), progress=False)
    plain = train(TrainConfig(data=synth_dir, out=tmp_path / "plain", mask_aux=0.0, **SMALL), progress=False)
    assert json.loads((masked / "config.json").read_text())["mask_aux"] == 1.0
    # The same splits, draws and initialisation, but the features were also pulled towards the masks.
    assert json.loads((masked / "splits.json").read_text()) == json.loads((plain / "splits.json").read_text())
    assert _history(masked) != pytest.approx(_history(plain), abs=1e-6)
    a, b = _state(masked), _state(plain)
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)  # no probe in what is saved
    assert not torch.equal(a["features.1.0.weight"], b["features.1.0.weight"])
    # The probe lives in the checkpoint only (for --resume): one 1x1 convolution per class on 128 channels.
    probe = torch.load(masked / "checkpoint.pt", weights_only=True)["probe"]
    assert probe["weight"].shape == (4, 128, 1, 1)
    # What the run predicts with is the plain classifier, as load_run builds it for predict, serve and export.
    model = load_run(masked).model
    assert not hasattr(model, "cells") and type(model).__name__ == "VGGNet"
    # Interrupted after epoch 1 and resumed: the same run, the probe's state included.
    part = tmp_path / "part"
    interrupted(monkeypatch, TrainConfig(data=synth_dir, out=part, mask_aux=1.0, **SMALL))
    train(TrainConfig(data=synth_dir, out=part, mask_aux=1.0, resume=True, **SMALL), progress=False)
    assert _history(part) == pytest.approx(_history(masked), abs=1e-6)
    assert all(torch.allclose(_state(part)[k].float(), a[k].float(), atol=1e-6) for k in a)


def test_step_1_learns_the_union_of_the_masks(synth_dir, tmp_path):
    run = train(TrainConfig(data=synth_dir, out=tmp_path / "b", mask_aux=0.5, **{**SMALL, "task": "binary",
                                                                                  "epochs": 1}), progress=False)
    probe = torch.load(run / "checkpoint.pt", weights_only=True)["probe"]
    assert probe["weight"].shape == (1, 128, 1, 1)
    assert np.isfinite(_history(run)).all()


def test_mask_classes_leave_the_other_classes_cells_out_of_the_loss(synth_dir, tmp_path):
    def probe(name, classes):
        code, _, err = run_main("train", "multiclass", str(synth_dir), "--out", str(tmp_path / name), "--epochs", "1",
                                "--batch-size", "8", "--image-size", "64x128", "--workers", "0", "--mask-aux", "1",
                                "--mask-classes", classes)
        assert code == 0, err
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["mask_classes"] == [int(c) for c in classes.split(",")]
        assert TrainConfig.read(tmp_path / name / "config.json").mask_classes == tuple(config["mask_classes"])
        return torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["probe"]["weight"][:, :, 0, 0]

    # The same seed gives both probes the same start: a class whose cells are out of the loss keeps it.
    a, b = probe("a", "2,3,4"), probe("b", "3,4")
    assert torch.equal(a[0], b[0])  # class 1: in neither
    assert not torch.equal(a[1], b[1])  # class 2: learnt in a only
    assert not torch.equal(a[2], b[2])  # class 3: in both, but the features under it moved apart


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "seed"], "--mask-aux is for the classifiers' sigmoid heads"),
    (["--tile-width", "64"], "--mask-aux with --tile-width is not supported"),
    (["--mask-classes", "2;3"], "--mask-classes '2;3' is not a comma-separated list of class numbers"),
])
def test_what_it_cannot_train_is_refused_in_one_line(synth_dir, tmp_path, extra, message):
    code, _, err = run_main("train", "multiclass", str(synth_dir), "--out", str(tmp_path / "r"), "--mask-aux", "1",
                            *extra)
    assert code == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_a_weight_out_of_range_and_what_has_no_masks_are_refused(tmp_path):
    def config(**kw):
        return TrainConfig(task="binary", data=tmp_path, out=tmp_path / "r", **kw)

    for weight in (-1.0, 101.0, "1"):
        with pytest.raises(ConfigError, match="--mask-aux must lie in 0..100"):
            config(mask_aux=weight).validate()
    with pytest.raises(ConfigError, match="--mask-aux trains on the augmented training images"):
        config(mask_aux=1.0, augment=False).validate()
    with pytest.raises(ConfigError, match="--mask-aux with --pseudo is not supported"):
        config(mask_aux=1.0, pseudo=tmp_path, teacher=tmp_path).validate()
    config(mask_aux=0.0, augment=False).validate()  # off: nothing to refuse
    step2 = dict(task="multiclass", data=tmp_path, out=tmp_path / "r", mask_aux=1.0)
    for classes in ((), (0, 2), (2, 2), (5,), ("2",)):
        with pytest.raises(ConfigError, match="--mask-classes must name distinct classes among 1, 2, 3, 4"):
            TrainConfig(**step2, mask_classes=classes).validate()
    TrainConfig(**step2, mask_classes=(4, 2)).validate()
    with pytest.raises(ConfigError, match="--mask-classes is step 2's"):
        config(mask_aux=1.0, mask_classes=(2, 3, 4)).validate()
    with pytest.raises(ConfigError, match="--mask-classes chooses the classes of --mask-aux's loss"):
        TrainConfig(**{**step2, "mask_aux": 0.0}, mask_classes=(2,)).validate()


def test_step_2_learns_classes_2_to_4_by_default_and_not_where_it_cannot_apply(tmp_path):
    def config(**kw):
        return TrainConfig(data=tmp_path, out=tmp_path / "r", **kw)

    # Step 2 learns where classes 2-4 lie and breaks even on a rare class: on synthetic steel it wins, and with
    # class 1's cells it names class 1 on real steel where there is none (docs/rare-classes.md).
    step2 = config(task="multiclass")
    assert (step2.mask_aux, step2.mask_classes, step2.rare_threshold) == (2.0, (2, 3, 4), "break-even")
    assert all(config(task=task).mask_aux == 0.0 for task in ("binary", "segment"))
    assert config(task="binary", mask_aux=1.5).mask_aux == 1.5
    # Where the mask loss cannot apply, the default is off; asked for there, it is refused (tests above).
    for off in (dict(protocol="seed"), dict(tile_width=64), dict(augment=False),
                dict(pseudo=tmp_path, teacher=tmp_path)):
        assert config(task="multiclass", **off).mask_aux == 0.0, off
    config(task="multiclass", tile_width=64).validate()  # no refusal of what the user did not ask for
    assert config(task="multiclass", protocol="seed").rare_threshold == "f1"
    # A run written before --mask-aux, --mask-classes and --rare-threshold existed trained without them.
    legacy = step2.to_dict()
    del legacy["mask_aux"], legacy["rare_threshold"], legacy["mask_classes"]
    restored = TrainConfig.from_dict(legacy)
    assert (restored.mask_aux, restored.mask_classes, restored.rare_threshold) == (0.0, (1, 2, 3, 4), "f1")
    with pytest.raises(ConfigError, match="--rare-threshold must be one of f1, break-even, got 'median'"):
        config(task="multiclass", rare_threshold="median").validate()
