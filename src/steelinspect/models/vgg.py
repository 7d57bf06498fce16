"""A compact VGG-style CNN like the capstone's: conv-conv-pool-dropout blocks and a dense head."""

from __future__ import annotations

import torch
from torch import nn

from steelinspect.models.pooling import AvgMaxPool
from steelinspect.models.tiling import TileableClassifier


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


class VGGNet(TileableClassifier):
    """A strided stem, four conv-conv-pool-dropout blocks, global average + max pooling (any input size), a
    dense head -> logits. The stem halves the image first: full-resolution double convolutions cost most of the
    compute and, on these textures, little accuracy (measured: twice the training speed on CPU)."""

    def __init__(self, num_outputs: int, in_channels: int = 1, widths=(24, 32, 64, 128, 192), dropout: float = 0.1):
        super().__init__()
        stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, c_in = [stem], widths[0]
        for width in widths[1:]:
            blocks.append(_block(c_in, width, dropout))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            AvgMaxPool(),
            nn.Linear(2 * c_in, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(128, num_outputs),
        )

        self.map_channels = widths[3]  # the third block's output, at stride 16 (models/mask_probe.py)

    def forward_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, the stride-16 feature map): what --mask-aux trains on, the same logits as forward_image."""
        middle = self.features[:4](x)
        return self.head(self.features[4:](middle)), middle
