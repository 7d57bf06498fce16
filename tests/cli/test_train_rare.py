"""`train ... --sampler --loss` through the console entry point: recorded in config.json, refused where unknown."""

import json

import torch

from tests.cli_runner import run_main


def test_train_multiclass_balanced_focal_records_both(synth_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_main("train", "multiclass", synth_dir, "--out", out, "--epochs", 1, "--batch-size", 8,
                                 "--image-size", "64x128", "--workers", 0, "--device", "cpu", "--sampler", "balanced",
                                 "--loss", "focal", "--focal-alpha", 0.5)
    assert code == 0, err
    assert "balanced sampler, focal loss" in " ".join(stdout.split())
    config = json.loads((out / "config.json").read_text())
    assert (config["sampler"], config["loss"], config["focal_gamma"], config["focal_alpha"]) == ("balanced", "focal",
                                                                                                   2.0, 0.5)
    blob = torch.load(out / "model.pt", weights_only=True)
    assert blob["config"]["loss"] == "focal" and blob["loss_weights"] is None  # focal: no positive weights
    assert len(json.loads((out / "metrics.json").read_text())["thresholds"]) == 4  # still tuned on validation


def test_unknown_sampler_or_a_loss_of_another_task_is_one_line(synth_dir, tmp_path):
    for option, value, said in (("--sampler", "uniform", "--sampler must be one of natural, balanced"),
                                ("--loss", "lovasz", "--loss 'lovasz' cannot train multiclass")):
        code, _, err = run_main("train", "multiclass", synth_dir, "--out", tmp_path / value, option, value)
        assert code == 1 and said in " ".join(err.split()), err
        assert not (tmp_path / value).exists()
