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


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "seed"], "--mask-aux is for the classifiers' sigmoid heads"),
    (["--tile-width", "64"], "--mask-aux with --tile-width is not supported"),
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


def test_it_is_off_by_default_and_where_it_cannot_apply(tmp_path):
    def config(**kw):
        return TrainConfig(data=tmp_path, out=tmp_path / "r", **kw)

    # Off by default: on synthetic steel it wins, on real steel it names class 1 where there is none
    # (docs/rare-classes.md, "--mask-aux").
    assert all(config(task=task).mask_aux == 0.0 for task in ("binary", "multiclass", "segment"))
    assert config(task="binary", mask_aux=1.5).mask_aux == 1.5
    # A run written before --mask-aux and --rare-threshold existed trained without them, and resumes so.
    legacy = config(task="multiclass").to_dict()
    del legacy["mask_aux"], legacy["rare_threshold"]
    restored = TrainConfig.from_dict(legacy)
    assert restored.mask_aux == 0.0 and restored.rare_threshold == "f1"
    with pytest.raises(ConfigError, match="--rare-threshold must be one of f1, break-even, got 'median'"):
        config(task="multiclass", rare_threshold="median").validate()
