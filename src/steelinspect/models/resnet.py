"""ResNet-18/34/50 and ResNeXt-50 (32x4d) in plain PyTorch: an encoder (shared with the UNet and the FPN) and a
classifier on top of it.

Parameter names and shapes follow torchvision (conv1, bn1, layer1..layer4; BasicBlock for 18/34, Bottleneck
with its 3x3 convolution strided, "ResNet v1.5", for 50), so a torchvision state dict loads by name (see
models/weights.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from steelinspect.models.pooling import AvgMaxPool
from steelinspect.models.tiling import TileableClassifier

WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class EncoderSpec:
    """One torchvision ResNet variant: its block, blocks per stage, and the grouped 3x3 convolution's shape."""

    label: str  # how messages name it
    block: str  # "basic" | "bottleneck"
    layers: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64


ENCODERS = {
    "resnet18": EncoderSpec("ResNet-18", "basic", (2, 2, 2, 2)),
    "resnet34": EncoderSpec("ResNet-34", "basic", (3, 4, 6, 3)),
    "resnet50": EncoderSpec("ResNet-50", "bottleneck", (3, 4, 6, 3)),
    "resnext50": EncoderSpec("ResNeXt-50 (32x4d)", "bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4),
}
DEPTHS = {18: "resnet18", 34: "resnet34", 50: "resnet50"}


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """torchvision's projection shortcut (1x1 conv + BN, keys downsample.0/.1) where the shape changes; else None."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, width_per_group: int = 64):
        super().__init__()
        c_out = planes
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(c_in, c_out, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, strided), 1x1 expand x4: torchvision's Bottleneck."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, width_per_group: int = 64):
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(c_in, c_out, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNetEncoder(nn.Module):
    """forward(x) -> feature maps at strides 2, 4, 8, 16, 32 (channels in `out_channels`).

    `depth` 18, 34 or 50, or `name` one of ENCODERS (resnet18, resnet34, resnet50, resnext50).
    """

    def __init__(self, depth: int = 18, in_channels: int = 1, name: str | None = None):
        super().__init__()
        if name is None:
            if depth not in DEPTHS:
                raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
            name = DEPTHS[depth]
        if name not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
        spec = ENCODERS[name]
        self.name, self.label = name, spec.label
        self.depth = 2 + sum(spec.layers) * (3 if spec.block == "bottleneck" else 2)  # layers with weights
        block = BLOCKS[spec.block]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (blocks, planes) in enumerate(zip(spec.layers, WIDTHS), start=1):
            stride = 1 if i == 1 else 2
            layer = [block(c_in, planes, stride, spec.groups, spec.width_per_group)]
            c_in = planes * block.expansion
            layer += [block(c_in, planes, 1, spec.groups, spec.width_per_group) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
        self.out_channels = [64, *(w * block.expansion for w in WIDTHS)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero the last BN of each residual branch: blocks start as identities, which trains better from scratch.
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.last_bn.weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))  # stride 2
        f2 = self.layer1(self.maxpool(f1))  # 4
        f3 = self.layer2(f2)  # 8
        f4 = self.layer3(f3)  # 16
        f5 = self.layer4(f4)  # 32
        return [f1, f2, f3, f4, f5]


class ResNetClassifier(TileableClassifier):
    """Encoder + global average and max pooling + dropout + linear -> logits."""

    def __init__(self, num_outputs: int, depth: int = 18, in_channels: int = 1, dropout: float = 0.2,
                 name: str | None = None):
        super().__init__()
        self.encoder = ResNetEncoder(depth, in_channels, name=name)
        self.pool = AvgMaxPool()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * self.encoder.out_channels[-1], num_outputs)

        self.map_channels = self.encoder.out_channels[3]  # layer3, at stride 16 (models/mask_probe.py)

    def forward_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_map(x)[0]

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, layer3's stride-16 feature map): what --mask-aux trains on."""
        features = self.encoder(x)
        return self.fc(self.dropout(self.pool(features[-1]))), features[3]
