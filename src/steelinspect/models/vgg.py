"""A compact VGG-style CNN like the capstone's: conv-conv-pool-dropout blocks and a dense head."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Dropout2d(dropout),
    )


class VGGNet(nn.Module):
    """Five blocks (16..128 channels), global average pooling (any input size), dense head -> logits."""

    def __init__(self, num_outputs: int, in_channels: int = 1, widths=(16, 32, 64, 96, 128), dropout: float = 0.1):
        super().__init__()
        blocks, c_in = [], in_channels
        for width in widths:
            blocks.append(_block(c_in, width, dropout))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c_in, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(128, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
