"""The losses behind --loss: focal against a hand computation, the Lovasz hinge's defining properties."""

import math

import pytest
import torch
import torch.nn.functional as F

from steelinspect.train.losses import bce_lovasz_loss, focal_loss, lovasz_hinge, softmax_focal_loss


def test_focal_loss_matches_a_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = 0.0
    for z, t in zip(logits.flatten().tolist(), target.flatten().tolist()):
        p = 1 / (1 + math.exp(-z))
        p_t = p if t else 1 - p
        alpha_t = 0.25 if t else 0.75
        expected += -alpha_t * (1 - p_t) ** 2 * math.log(p_t)
    assert focal_loss(logits, target, gamma=2.0, alpha=0.25).item() == pytest.approx(expected / 4, rel=1e-6)


def test_focal_loss_at_gamma_0_is_bce():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 4) * 3, (torch.rand(6, 4) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    assert focal_loss(logits, target, gamma=0.0, alpha=None).item() == pytest.approx(bce.item(), rel=1e-6)
    labels = torch.tensor([0, 3, 1, 2, 2, 0])
    assert softmax_focal_loss(logits, labels, gamma=0.0).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-6)
    # gamma 2 discounts the well-classified elements: below BCE everywhere.
    assert focal_loss(logits, target, gamma=2.0, alpha=None) < bce


def test_lovasz_hinge_is_zero_on_a_perfect_prediction_and_positive_otherwise():
    torch.manual_seed(0)
    target = (torch.rand(2, 4, 8, 16) > 0.8).float()
    target[:, 1] = 0  # a class absent from the batch
    perfect = 5.0 * (2 * target - 1)  # every pixel on the right side with a margin above 1
    assert lovasz_hinge(perfect, target).item() == 0.0
    wrong = perfect.clone()
    wrong[0, 2, 0, :4] *= -1  # a few pixels of one class flipped
    assert lovasz_hinge(wrong, target).item() > 0
    assert lovasz_hinge(-perfect, target).item() > lovasz_hinge(wrong, target).item()


def test_lovasz_hinge_has_a_gradient():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 8, 16, requires_grad=True)
    target = (torch.rand(2, 4, 8, 16) > 0.7).float()
    loss = bce_lovasz_loss(logits, target)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # full-size truth is resized to the logits, as for BCE + Dice
    big = F.interpolate(target, scale_factor=2, mode="nearest")
    assert bce_lovasz_loss(logits.detach(), big).item() == pytest.approx(bce_lovasz_loss(logits.detach(), target).item())


def test_focal_epochs_are_scored_with_thresholds_tuned_on_validation():
    import numpy as np

    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.tasks import Collector, MultilabelTask

    truth = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 2, 2]]
    probs = np.where(truth > 0, 0.3, 0.1)  # focal's low probabilities: every positive below 0.5
    val = Collector(probs=[probs], targets=[truth], indices=[np.arange(6)], count=6)
    scores = {}
    for loss in ("bce", "focal"):
        task = MultilabelTask()
        task.configure(TrainConfig(task="multiclass", data="d", out="o", loss=loss))
        scores[loss] = task.metrics(val, task.epoch_params(val))["f1"]
    assert scores == {"bce": 0.0, "focal": 1.0}
