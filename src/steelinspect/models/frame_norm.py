"""BatchNorm that, at inference, also normalises each frame by its own statistics (`--frame-norm`).

A BatchNorm layer normalises its input with the mean and variance it measured on the training data. A model
trained on synthetic steel then normalises real steel's features with synthetic statistics, and that shift is
what puts its tuned threshold in the wrong place on real plates (docs/transfer.md). `adapt` re-measures the
statistics on a camera's frames; this needs none: in eval mode each layer normalises every frame with a mix of
that frame's own statistics (mean and variance over its height and width) and the training ones, weighted
`frame_weight` and 1 - frame_weight, as alpha-BN does (You et al. 2021, "Test-time batch statistics calibration
for covariate shift"). Each frame's output depends on that frame alone, never on the others in its batch.

Training is plain BatchNorm, and so is the validation that picks the best epoch (`plain_statistics`): what the
model learns, and when it is best, are the synthetic task's. The mix is how a frame is normalised when it is
decided: the thresholds tuned on validation, the run's scores, `predict`, `serve` and every export use it.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class FrameBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose eval-mode statistics are `frame_weight` x the frame's own + the rest the running ones.
    The parameters and buffers are BatchNorm2d's, so state dicts move between the two unchanged."""

    def __init__(self, num_features: int, frame_weight: float, **kwargs):
        super().__init__(num_features, **kwargs)
        self.frame_weight = float(frame_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.frame_weight == 0 or self.running_mean is None:
            return super().forward(x)
        w = self.frame_weight
        # The frame's mean and variance per channel, as E[x] and E[x^2] - E[x]^2: two reductions that read the
        # activations once each without writing them (torch.var_mean here cost as much as the convolutions).
        mean = x.mean(dim=(2, 3), keepdim=True)
        square = torch.linalg.vector_norm(x, 2, dim=(2, 3), keepdim=True) ** 2 / (x.shape[2] * x.shape[3])
        var = (square - mean * mean).clamp_min(0)
        mean = w * mean + (1 - w) * self.running_mean.view(1, -1, 1, 1)
        var = w * var + ((1 - w) * self.running_var + self.eps)[:, None, None]
        # Then x * scale + shift in one pass (the per-channel factors are small, the activations are not). Spelt
        # weight / sqrt: the TorchScript ONNX exporter's constant folding drops a node of rsqrt(var) * weight and
        # writes a graph ONNX Runtime refuses.
        scale = (self.weight[:, None, None] if self.affine else 1.0) / torch.sqrt(var)
        shift = (self.bias[:, None, None] if self.affine else 0.0) - mean * scale
        return torch.addcmul(shift, x, scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, frame_weight={self.frame_weight:g}"


def use_frame_statistics(model: nn.Module, frame_weight: float) -> nn.Module:
    """Replace every BatchNorm2d in `model` (in place) by a FrameBatchNorm2d with the same state; returns
    `model`. 0 leaves it as it is."""
    if frame_weight == 0:
        return model
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            swapped = FrameBatchNorm2d(child.num_features, frame_weight, eps=child.eps, momentum=child.momentum,
                                       affine=child.affine, track_running_stats=child.track_running_stats)
            swapped.load_state_dict(child.state_dict())
            setattr(model, name, swapped)
        else:
            use_frame_statistics(child, frame_weight)
    return model


@contextmanager
def plain_statistics(model: nn.Module):
    """Inside the block, every FrameBatchNorm2d of `model` uses the running statistics alone (plain BatchNorm)."""
    layers = [m for m in model.modules() if isinstance(m, FrameBatchNorm2d)]
    weights = [m.frame_weight for m in layers]
    for m in layers:
        m.frame_weight = 0.0
    try:
        yield model
    finally:
        for m, w in zip(layers, weights):
            m.frame_weight = w
