"""Models by name (`--arch`). Every model maps float32 (N, 1, H, W) to logits."""

from __future__ import annotations

from torch import nn

from steelinspect.errors import ConfigError


def _vgg(num_outputs: int, in_channels: int) -> nn.Module:
    from steelinspect.models.vgg import VGGNet

    return VGGNet(num_outputs, in_channels)


def _resnet(depth: int):
    def build(num_outputs: int, in_channels: int) -> nn.Module:
        from steelinspect.models.resnet import ResNetClassifier

        return ResNetClassifier(num_outputs, depth, in_channels)

    return build


def _unet(depth: int):
    def build(num_outputs: int, in_channels: int) -> nn.Module:
        from steelinspect.models.unet import build_unet

        return build_unet(depth, num_classes=num_outputs, in_channels=in_channels)

    return build


CLASSIFIERS = {"vgg": _vgg, "resnet18": _resnet(18), "resnet34": _resnet(34)}
SEGMENTERS = {"unet_resnet18": _unet(18), "unet_resnet34": _unet(34)}
ARCHS = {**CLASSIFIERS, **SEGMENTERS}


def build_model(arch: str, num_outputs: int, in_channels: int = 1) -> nn.Module:
    if arch not in ARCHS:
        raise ConfigError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch](num_outputs, in_channels)


def encoder_of(model: nn.Module):
    """The ResNet encoder inside a model, for loading pretrained weights; None for VGG."""
    return getattr(model, "encoder", None)
