"""A compact VGG-style CNN like the capstone's: conv-conv-pool-dropout blocks and a dense head."""

from __future__ import annotations

import torch
from torch import nn

from steelinspect.models.pooling import AvgMaxPool
from steelinspect.models.tiling import TileableClassifier


class IBN(nn.Module):
    """Instance-batch normalisation (IBN-a, Pan et al. 2018): the first half of the channels normalised per image
    (InstanceNorm, affine), the rest over the batch (BatchNorm). Instance normalisation in the early layers
    removes what a plate's look (texture contrast, illumination, camera) does to each feature map, which is what
    differs between synthetic and real steel; the BatchNorm half keeps what tells defects apart."""

    def __init__(self, channels: int):
        super().__init__()
        self.half = channels // 2
        self.instance = nn.InstanceNorm2d(self.half, affine=True)
        self.batch = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, (self.half, x.shape[1] - self.half), dim=1)
        return torch.cat((self.instance(a.contiguous()), self.batch(b.contiguous())), dim=1)


def _norm(channels: int, ibn: bool) -> nn.Module:
    return IBN(channels) if ibn else nn.BatchNorm2d(channels)


def _block(c_in: int, c_out: int, dropout: float, ibn: bool = False) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        _norm(c_out, ibn),
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
    compute and, on these textures, little accuracy (measured: twice the training speed on CPU).

    `ibn` (`--arch vgg_ibn`): the stem and the first two blocks normalise with IBN (above) instead of BatchNorm;
    the deeper blocks, where the features are about defects rather than the plate's look, keep BatchNorm."""

    IBN_BLOCKS = 2  # blocks after the stem whose first normalisation is IBN

    def __init__(self, num_outputs: int, in_channels: int = 1, widths=(24, 32, 64, 128, 192), dropout: float = 0.1,
                 ibn: bool = False):
        super().__init__()
        stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 5, stride=2, padding=2, bias=False),
            _norm(widths[0], ibn),
            nn.ReLU(inplace=True),
        )
        blocks, c_in = [stem], widths[0]
        for i, width in enumerate(widths[1:]):
            blocks.append(_block(c_in, width, dropout, ibn and i < self.IBN_BLOCKS))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            AvgMaxPool(),
            nn.Linear(2 * c_in, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(128, num_outputs),
        )

    def forward_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
