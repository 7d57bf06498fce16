"""FPN (feature pyramid network) decoder over a ResNet encoder, in plain PyTorch: the segmentation_models_pytorch
layout without the package.

The encoder gives maps at strides 4, 8, 16, 32 (its stride-2 map is not used). Each gets a lateral 1x1
convolution to `pyramid_channels`; the top-down path upsamples the coarser level x2 (nearest) and adds it; a
3x3 convolution smooths each sum. Every pyramid level then goes through 3x3 conv-GroupNorm-ReLU blocks, upsampled
x2 after each, down to stride 4, where the levels are added, and a 3x3 head gives one logit per class, upsampled
x4 (bilinear) to the input size. Compared with the UNet: no decoder work at strides 2 and 1, so less memory and
compute at full resolution, and every scale contributes to the prediction directly.

Input sides must be multiples of 32, as for the UNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from steelinspect.errors import ConfigError
from steelinspect.models.unet import check_input_size

PYRAMID_CHANNELS = 256
SEGMENTATION_CHANNELS = 128


class ConvGnReLU(nn.Sequential):
    """3x3 conv, GroupNorm (batch-size independent: segmenters train on small batches), ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(32, out_channels),
            nn.ReLU(inplace=True),
        )


class SegmentationBlock(nn.Module):
    """A pyramid level up to stride 4: `upsamples` times (conv-GN-ReLU, x2); one conv-GN-ReLU when 0."""

    def __init__(self, in_channels: int, out_channels: int, upsamples: int):
        super().__init__()
        self.upsamples = upsamples
        self.blocks = nn.ModuleList(
            ConvGnReLU(in_channels if i == 0 else out_channels, out_channels) for i in range(max(upsamples, 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
            if self.upsamples:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class FPN(nn.Module):
    """`encoder(x)` must return 5 maps at strides 2..32 and expose `out_channels` (their channel counts)."""

    def __init__(self, encoder: nn.Module, num_classes: int = 4, pyramid_channels: int = PYRAMID_CHANNELS,
                 segmentation_channels: int = SEGMENTATION_CHANNELS, dropout: float = 0.2):
        super().__init__()
        enc = list(encoder.out_channels)
        if len(enc) != 5:
            raise ConfigError(f"the FPN encoder must give 5 feature maps (strides 2-32), it gives {len(enc)}")
        self.encoder = encoder
        # Levels at strides 4, 8, 16, 32 (encoder maps 2..5).
        self.lateral = nn.ModuleList(nn.Conv2d(c, pyramid_channels, 1) for c in enc[1:])
        self.smooth = nn.ModuleList(nn.Conv2d(pyramid_channels, pyramid_channels, 3, padding=1) for _ in enc[1:])
        self.segmentation = nn.ModuleList(
            SegmentationBlock(pyramid_channels, segmentation_channels, upsamples) for upsamples in (0, 1, 2, 3)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(segmentation_channels, num_classes, 3, padding=1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes, H, W)."""
        if not torch.jit.is_tracing():
            check_input_size(x.shape[-2], x.shape[-1], "FPN")
        features = self.encoder(x)[1:]  # strides 4, 8, 16, 32
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        # Top-down: each level gets the coarser one upsampled x2 (sides are multiples of 32, so shapes agree).
        for i in range(len(laterals) - 2, -1, -1):
            laterals[i] = laterals[i] + F.interpolate(laterals[i + 1], scale_factor=2.0, mode="nearest")
        pyramid = [conv(p) for conv, p in zip(self.smooth, laterals)]
        merged = sum(block(p) for block, p in zip(self.segmentation, pyramid))
        logits = self.head(self.dropout(merged))  # stride 4
        return F.interpolate(logits, scale_factor=4.0, mode="bilinear", align_corners=False)


def build_fpn(encoder_name: str = "resnet18", num_classes: int = 4, in_channels: int = 1) -> FPN:
    """FPN over `models.resnet.ResNetEncoder(name=encoder_name)` (load encoder weights separately)."""
    from steelinspect.models.resnet import ResNetEncoder

    return FPN(ResNetEncoder(in_channels=in_channels, name=encoder_name), num_classes=num_classes)
