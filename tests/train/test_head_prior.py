"""--head-prior: the classifiers' outputs start at their share of positive training draws."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steelinspect.data.master import build_master
from steelinspect.data.sampling import balanced_weights
from steelinspect.models.factory import build_model
from steelinspect.runs.config import TrainConfig
from steelinspect.train.loop import train
from tests.cli_runner import run_main


@pytest.mark.parametrize("arch", ["vgg", "resnet18"])
def test_an_untrained_model_starts_at_the_shares(arch):
    model = build_model(arch, 4).eval()
    shares = [0.02, 0.25, 0.6, 0.995]
    model.start_at_prior(shares)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    # What the head adds to its inputs is exactly the shares' log-odds (0.995 is held at 0.99).
    expected = torch.logit(torch.tensor([0.02, 0.25, 0.6, 0.99]))
    assert torch.allclose(last.bias, expected, atol=1e-5)
    with pytest.raises(ValueError, match="3 shares for 4 outputs"):
        model.start_at_prior([0.1, 0.2, 0.3])


def test_a_run_starts_at_its_training_draws(synth_dir, tmp_path):
    """Step 2 under the balanced sampler: the shares are those of the weighted draws, not of the images."""
    # A learning rate too small to move anything in one epoch: the saved head is the one it started with.
    config = TrainConfig(task="multiclass", data=synth_dir, out=tmp_path / "run", epochs=1, batch_size=8,
                         image_size=(64, 128), workers=0, head_prior=True, lr=1e-12)
    run = train(config, progress=False)
    train_ids = json.loads((run / "splits.json").read_text())["train"]
    master = build_master(synth_dir).set_index("ImageId").loc[train_ids]
    targets = np.array([[c in ids for c in (1, 2, 3, 4)] for ids in master.ClassIds], np.float64)
    weights = balanced_weights(targets.astype(np.float32))
    shares = (weights[:, None] * targets).sum(axis=0) / weights.sum()
    state = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    bias = state[[k for k in state if k.endswith(".bias")][-1]]
    assert np.allclose(torch.sigmoid(bias).numpy(), np.clip(shares, 0.01, 0.99), atol=1e-4)
    assert json.loads((run / "config.json").read_text())["head_prior"] is True


def test_the_softmax_head_refuses_it_in_one_line(synth_dir, tmp_path):
    code, _, err = run_main("train", "multiclass", str(synth_dir), "--out", str(tmp_path / "r"), "--protocol", "seed",
                            "--head-prior")
    assert code == 1 and "--head-prior is for the classifiers' sigmoid heads" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
