"""UNet shapes and input checks, with a stand-in encoder (and the real ResNet encoder when present)."""

import importlib.util

import pytest
import torch
from torch import nn

from steelinspect.errors import ConfigError
from steelinspect.models.unet import UNet, build_unet


class TinyEncoder(nn.Module):
    """Five stride-2 convolutions: maps at strides 2..32, like a ResNet encoder."""

    out_channels = [4, 4, 8, 8, 16]

    def __init__(self):
        super().__init__()
        chans = [1, *self.out_channels]
        self.stages = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chans, chans[1:]))

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


@pytest.mark.parametrize("size", [(32, 32), (64, 256), (96, 160)])
def test_output_is_one_logit_map_per_class_at_input_size(size):
    model = UNet(TinyEncoder(), num_classes=4, decoder_channels=(16, 8, 8, 4, 4)).eval()
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 4, *size)
    assert torch.isfinite(y).all()


def test_gradients_reach_the_encoder():
    model = UNet(TinyEncoder(), decoder_channels=(16, 8, 8, 4, 4))
    model(torch.randn(1, 1, 32, 64)).mean().backward()
    assert model.encoder.stages[0].weight.grad is not None
    assert model.encoder.stages[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(250, 1600), (256, 1590), (16, 64)])
def test_sides_not_divisible_by_32_are_refused(size):
    model = UNet(TinyEncoder(), decoder_channels=(16, 8, 8, 4, 4))
    with pytest.raises(ConfigError, match="multiples of 32"):
        model(torch.randn(1, 1, *size))


def test_encoder_must_give_five_maps():
    enc = TinyEncoder()
    enc.out_channels = [4, 8]
    with pytest.raises(ConfigError, match="5 feature maps"):
        UNet(enc)


@pytest.mark.skipif(importlib.util.find_spec("steelinspect.models.resnet") is None, reason="ResNet encoder not written yet")
@pytest.mark.parametrize("depth", [18, 34])
def test_resnet_unet(depth):
    torch.manual_seed(0)
    model = build_unet(depth=depth).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 1, 64, 128))
    assert y.shape == (1, 4, 64, 128)
