"""--freeze-encoder-epochs N: the encoder (models.factory.feature_extractor) frozen for the first N epochs.

With a handful of images and a new or re-purposed head, the first gradients are large and mostly noise; let
through to a pretrained encoder they overwrite what it learned before the head has settled. Frozen means no
gradient (so the optimiser leaves the weights alone and the backward pass skips the encoder) and the encoder in
eval mode: BatchNorm keeps the running statistics it was pretrained with instead of re-estimating them from a
few images, and dropout inside it is off. From epoch N + 1 everything trains.
"""

from __future__ import annotations

from torch import nn

from steelinspect.errors import ConfigError
from steelinspect.models.factory import feature_extractor


def encoder(model: nn.Module, arch: str) -> nn.Module:
    found = feature_extractor(model)
    if found is None:
        raise ConfigError(f"--freeze-encoder-epochs: --arch {arch} has no encoder to freeze")
    return found


def frozen_in(epoch: int, freeze_epochs: int) -> bool:
    """Whether the encoder is frozen in `epoch` (0-based)."""
    return epoch < freeze_epochs


def set_frozen(model: nn.Module, arch: str, frozen: bool) -> None:
    """Encoder parameters trainable or not. Call before the epoch's net.train(); `hold_eval` after it."""
    for p in encoder(model, arch).parameters():
        p.requires_grad_(not frozen)


def hold_eval(model: nn.Module, arch: str) -> None:
    """The frozen encoder back in eval mode after net.train() put the whole model in training mode."""
    encoder(model, arch).eval()
