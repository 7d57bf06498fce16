"""`train ... --mask-aux W`: during training, a 1x1 convolution on the classifier's stride-16 feature map predicts
which cells hold each output's mask (data/mask_grid.py), and its loss (train/losses.py mask_loss), weighted by W,
joins the classifier's.

The masks tell the features which of the frame's lines and marks is the defect, where an image-level label only
says that one of them is. The probe is a training aid: it is not part of the model that is saved, exported or
served, so a run trained with it predicts exactly as any other (checkpoint.pt keeps it, for --resume).
"""

from __future__ import annotations

import torch
from torch import nn


class MaskProbe(nn.Module):
    """forward(x) -> (the classifier's logits, per-cell mask logits (N, outputs, H / 16, W / 16))."""

    def __init__(self, model: nn.Module, num_outputs: int):
        super().__init__()
        if not hasattr(model, "forward_with_map"):
            raise ValueError(f"{type(model).__name__} has no stride-16 feature map for --mask-aux")
        self.model = model
        self.cells = nn.Conv2d(model.map_channels, num_outputs, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.model.forward_with_map(x)
        return logits, self.cells(features)
