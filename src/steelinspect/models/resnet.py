"""ResNet-18/34 in plain PyTorch: an encoder (shared with the UNet) and a classifier on top of it.

Parameter names follow torchvision (conv1, bn1, layer1..layer4), so a torchvision ResNet state dict loads by
name (see models/weights.py).
"""

from __future__ import annotations

import torch
from torch import nn

from steelinspect.models.pooling import AvgMaxPool

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """forward(x) -> feature maps at strides 2, 4, 8, 16, 32 (channels in `out_channels`)."""

    def __init__(self, depth: int = 18, in_channels: int = 1):
        super().__init__()
        if depth not in LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(LAYERS)}, got {depth}")
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (blocks, width) in enumerate(zip(LAYERS[depth], WIDTHS), start=1):
            stride = 1 if i == 1 else 2
            layer = [BasicBlock(c_in, width, stride)] + [BasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            c_in = width
        self.out_channels = [64, *WIDTHS]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero the last BN of each residual branch: blocks start as identities, which trains better from scratch.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))  # stride 2
        f2 = self.layer1(self.maxpool(f1))  # 4
        f3 = self.layer2(f2)  # 8
        f4 = self.layer3(f3)  # 16
        f5 = self.layer4(f4)  # 32
        return [f1, f2, f3, f4, f5]


class ResNetClassifier(nn.Module):
    """Encoder + global average and max pooling + dropout + linear -> logits."""

    def __init__(self, num_outputs: int, depth: int = 18, in_channels: int = 1, dropout: float = 0.2):
        super().__init__()
        self.encoder = ResNetEncoder(depth, in_channels)
        self.pool = AvgMaxPool()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * self.encoder.out_channels[-1], num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[-1]
        return self.fc(self.dropout(self.pool(features)))
