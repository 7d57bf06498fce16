"""Models by name (`--arch`). Every model maps float32 (N, 1, H, W) to logits."""

from __future__ import annotations

from torch import nn

from steelinspect.errors import ConfigError


def _vgg(num_outputs: int, in_channels: int) -> nn.Module:
    from steelinspect.models.vgg import VGGNet

    return VGGNet(num_outputs, in_channels)


def _resnet(encoder: str):
    def build(num_outputs: int, in_channels: int) -> nn.Module:
        from steelinspect.models.resnet import ResNetClassifier

        return ResNetClassifier(num_outputs, in_channels=in_channels, name=encoder)

    return build


def _unet(encoder: str):
    def build(num_outputs: int, in_channels: int) -> nn.Module:
        from steelinspect.models.unet import build_unet

        return build_unet(num_classes=num_outputs, in_channels=in_channels, encoder_name=encoder)

    return build


def _fpn(encoder: str):
    def build(num_outputs: int, in_channels: int) -> nn.Module:
        from steelinspect.models.fpn import build_fpn

        return build_fpn(encoder, num_classes=num_outputs, in_channels=in_channels)

    return build


# Encoders: resnet18, resnet34 (BasicBlock), resnet50, resnext50 (32x4d; Bottleneck), torchvision's layouts.
ENCODER_NAMES = ("resnet18", "resnet34", "resnet50", "resnext50")
CLASSIFIERS = {"vgg": _vgg, **{name: _resnet(name) for name in ENCODER_NAMES}}
SEGMENTERS = {**{f"unet_{name}": _unet(name) for name in ENCODER_NAMES},
              **{f"fpn_{name}": _fpn(name) for name in ENCODER_NAMES}}
ARCHS = {**CLASSIFIERS, **SEGMENTERS}


def build_model(arch: str, num_outputs: int, in_channels: int = 1, tile_width: int | None = None,
                frame_norm: float = 0.0) -> nn.Module:
    """`tile_width` (classifiers): score images wider than it tile by tile (models/tiling.py). `frame_norm`
    (classifiers): at inference, BatchNorm mixes each frame's own statistics in with this weight (models/frame_norm.py)."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    model = ARCHS[arch](num_outputs, in_channels)
    if tile_width is not None:
        if arch not in CLASSIFIERS:
            raise ConfigError(f"--tile-width is for the classifiers, not --arch {arch}")
        model.tile_width = tile_width
    check_frame_norm(frame_norm, arch)
    if frame_norm:
        from steelinspect.models.frame_norm import use_frame_statistics

        use_frame_statistics(model, frame_norm)
    return model


def check_frame_norm(frame_norm: float, arch: str) -> None:
    """--frame-norm's weight: a number in 0..1, not 0 only for a classifier (TrainConfig.validate, and
    build_model for a run's config.json, which may be hostile)."""
    if not isinstance(frame_norm, (int, float)) or not 0 <= frame_norm <= 1:
        raise ConfigError(f"--frame-norm must lie in 0..1 (the weight of each frame's own statistics), got "
                          f"{frame_norm!r}")
    if frame_norm and arch not in CLASSIFIERS:
        raise ConfigError(f"--frame-norm is for the classifiers, not --arch {arch}")


def encoder_of(model: nn.Module):
    """The ResNet encoder inside a model, for loading pretrained weights; None for VGG."""
    return getattr(model, "encoder", None)


def feature_extractor(model: nn.Module) -> nn.Module | None:
    """The part of a model that turns pixels into features (what --freeze-encoder-epochs freezes): the ResNet
    encoder of a ResNet classifier, UNet or FPN; VGG's convolutional blocks. The rest is the head (and decoder)."""
    found = getattr(model, "encoder", None)
    return found if found is not None else getattr(model, "features", None)
