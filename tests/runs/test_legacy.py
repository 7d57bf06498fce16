"""Runs written before model.pt format 2 (78e69f0 and earlier) still load, with today's names."""

import json

import torch

from steelinspect.data.transforms import Preprocess
from steelinspect.models.factory import build_model
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.files import METRICS_FILE, MODEL_FILE
from steelinspect.runs.store import load_run, read_metrics, read_model_file, update_model_params


def _old_run(run_dir, head="multilabel", task="multiclass", arch="vgg", outputs=4):
    """model.pt and metrics.json exactly as format 1 wrote them: the head under "task", a segmenter's
    post-processing under metrics.json's "thresholds", a binary split's "threshold"."""
    run_dir.mkdir(parents=True)
    model = build_model(arch, outputs)
    config = TrainConfig(task=task, data=run_dir, out=run_dir, arch=arch, image_size=(64, 128))
    config_dict = {**config.to_dict(), "extra": {}}  # format 1's config had an (unused) "extra"
    torch.save({"format": 1, "arch": arch, "task": head, "num_outputs": outputs, "in_channels": 1,
                "state_dict": model.state_dict(), "weights_id": "", "preprocess": Preprocess(64, 128).to_dict(),
                "thresholds": [0.3] * outputs if head != "segment" else [], "class_ids": [1, 2, 3, 4],
                "postprocess": None, "loss_weights": None, "epoch": 1, "config": config_dict}, run_dir / MODEL_FILE)
    return model


def test_a_format_1_model_loads_with_its_head(tmp_path):
    model = _old_run(tmp_path / "old")
    run = load_run(tmp_path / "old")
    assert run.head == "multilabel" and run.thresholds == [0.3] * 4 and run.config.task == "multiclass"
    for name, value in model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], value)
    # Re-tuning an old run rewrites its model.pt in today's format, weights untouched.
    update_model_params(tmp_path / "old", thresholds=[0.4] * 4)
    blob = torch.load(tmp_path / "old" / MODEL_FILE, weights_only=True)
    assert blob["format"] == 2 and blob["head"] == "multilabel" and "task" not in blob
    assert read_model_file(tmp_path / "old")["thresholds"] == [0.4] * 4


def test_old_metrics_json_reads_in_todays_names(tmp_path):
    (tmp_path / "seg").mkdir()
    post = {"thresholds": [0.5] * 4, "min_areas": [600, 600, 1000, 2000], "gate": "off"}
    (tmp_path / "seg" / METRICS_FILE).write_text(json.dumps({"val": {"dice_kaggle": 0.5}, "thresholds": post}))
    metrics = read_metrics(tmp_path / "seg")
    assert metrics["postprocess"] == post and "thresholds" not in metrics
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / METRICS_FILE).write_text(json.dumps({"test": {"f1": 0.7, "threshold": 0.45},
                                                             "thresholds": [0.45]}))
    metrics = read_metrics(tmp_path / "bin")
    assert metrics["thresholds"] == [0.45] and metrics["test"] == {"f1": 0.7, "thresholds": [0.45]}


def test_todays_metrics_pass_unchanged(tmp_path):
    (tmp_path / "r").mkdir()
    today = {"test": {"f1": 0.7, "thresholds": [0.45]}, "thresholds": [0.45]}
    (tmp_path / "r" / METRICS_FILE).write_text(json.dumps(today))
    assert read_metrics(tmp_path / "r") == today
