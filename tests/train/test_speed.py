"""Training-speed settings: --precision bf16 trains on CPU (and resumes), fp16 is refused there in one line."""

import json

import pytest
import torch

from steelinspect.errors import ConfigError
from steelinspect.runs.config import TrainConfig
from steelinspect.train.loop import train
from tests.cli_runner import run_main
from tests.train.interrupt import interrupted

pytestmark = pytest.mark.slow
TINY = dict(task="binary", epochs=2, batch_size=16, image_size=(32, 64), workers=0, arch="vgg", seed=0,
            per_class=8, protocol="seed")


def test_bf16_trains_resumes_and_records_its_precision(synth_dir, tmp_path, monkeypatch):
    # Interrupted after epoch 1 (train/testhooks.py), then resumed: checkpoint.pt (with the scaler's state)
    # still loads with weights_only=True, and the run finishes in bf16 with fp32 weights.
    config = dict(TINY, data=synth_dir, out=tmp_path / "bf16", precision="bf16", channels_last=True)
    interrupted(monkeypatch, TrainConfig(**config))
    state = torch.load(tmp_path / "bf16" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and state["scaler"] == {}  # no GradScaler in bf16
    run = train(TrainConfig(**config, resume=True), progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["precision"] == "bf16" and saved["channels_last"] is True
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2]
    weights = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test"]["f1"] <= 1
    with pytest.raises(ConfigError, match="precision"):  # resuming at another precision is refused
        train(TrainConfig(**{**config, "precision": "fp32"}, resume=True), progress=False)


def test_fp16_on_cpu_and_unknown_precision_are_refused_in_one_line(synth_dir, tmp_path):
    code, out, err = run_main("train", "binary", synth_dir, "--out", tmp_path / "r", "--device", "cpu",
                              "--precision", "fp16")
    text = (out + err).strip()
    assert code == 1 and "fp16 needs a CUDA device" in text and len(text.splitlines()) == 1
    assert not (tmp_path / "r").exists()
    code, out, err = run_main("train", "segment", synth_dir, "--out", tmp_path / "s", "--precision", "fp8")
    assert code == 1 and "--precision must be one of fp32, bf16, fp16" in out + err
