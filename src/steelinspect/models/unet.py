"""UNet with a ResNet or ResNeXt encoder, in plain PyTorch (the segmentation_models_pytorch layout, without the package).

The encoder gives feature maps at strides 2, 4, 8, 16, 32; the decoder upsamples the deepest one step by step,
concatenating the encoder map of the same stride (the skip connection), up to full resolution, where a 3x3
convolution gives one logit per class. Sigmoids (one per class: classes may overlap in principle) are applied
by the task, not here, so the loss can use the numerically stable BCE-with-logits.

Input sides must be multiples of 32 (five halvings), e.g. the full 256x1600 image or 256x512 crops.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from steelinspect.errors import ConfigError

STRIDE = 32
DECODER_CHANNELS = (256, 128, 64, 32, 16)


class ConvBnReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """x2 nearest upsampling, concatenation with the skip map (if any), two 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvBnReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBnReLU(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNet(nn.Module):
    """`encoder(x)` must return 5 maps at strides 2..32 and expose `out_channels` (their channel counts)."""

    def __init__(self, encoder: nn.Module, num_classes: int = 4, decoder_channels: Sequence[int] = DECODER_CHANNELS):
        super().__init__()
        enc = list(encoder.out_channels)
        if len(enc) != 5:
            raise ConfigError(f"the UNet encoder must give 5 feature maps (strides 2-32), it gives {len(enc)}")
        if len(decoder_channels) != 5:
            raise ConfigError(f"decoder_channels needs 5 values, got {len(decoder_channels)}")
        self.encoder = encoder
        # Deepest map first; skips at strides 16, 8, 4, 2, and none for the last step to full resolution.
        in_channels = [enc[-1], *decoder_channels[:-1]]
        skip_channels = [*enc[-2::-1], 0]
        self.decoder = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(in_channels, skip_channels, decoder_channels)
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes, H, W)."""
        if not torch.jit.is_tracing():
            check_input_size(x.shape[-2], x.shape[-1])
        features = self.encoder(x)
        y = features[-1]
        skips = [*features[-2::-1], None]
        for block, skip in zip(self.decoder, skips):
            y = block(y, skip)
        return self.head(y)


def check_input_size(height: int, width: int, what: str = "UNet") -> None:
    if height % STRIDE or width % STRIDE or height <= 0 or width <= 0:
        raise ConfigError(
            f"{what} input is {int(height)}x{int(width)} (HxW): both sides must be positive multiples of {STRIDE}"
        )


def build_unet(depth: int = 18, num_classes: int = 4, in_channels: int = 1, encoder_name: str | None = None) -> UNet:
    """UNet over `models.resnet.ResNetEncoder(depth, in_channels, encoder_name)` (load encoder weights
    separately)."""
    from steelinspect.models.resnet import ResNetEncoder

    return UNet(ResNetEncoder(depth=depth, in_channels=in_channels, name=encoder_name), num_classes=num_classes)
