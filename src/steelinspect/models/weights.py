"""Load pretrained weights from a local file laid out as torchvision's ResNet / ResNeXt state dict (resnet18,
resnet34, resnet50, resnext50_32x4d: the .pth files torchvision downloads, e.g. resnet50-11ad3fa6.pth).

conv1's RGB filters are summed into one grey channel (a grey image is R = G = B, so the response is unchanged);
the ImageNet fc layer is skipped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from steelinspect.errors import ConfigError
from steelinspect.io import load_torch_file
from steelinspect.models.resnet import ResNetEncoder


def load_torchvision_resnet(encoder: ResNetEncoder, path: str | Path) -> dict[str, list[str]]:
    """Copy every encoder tensor from the file into `encoder`. Returns {"loaded": [...], "skipped": [...]} (skipped:
    the file's tensors the encoder has no place for, such as ImageNet's fc layer).

    Raises ConfigError naming the file when it cannot be read or does not fill the whole encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("weights file not found", path)
    state = load_torch_file(path, "weights file (a PyTorch state dict)", ConfigError)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError("not a state dict (expected a mapping of parameter names to tensors)", path)
    own = encoder.state_dict()
    loaded, skipped = [], []
    for key, value in state.items():
        key = key.removeprefix("module.").removeprefix("encoder.")
        if key not in own or not torch.is_tensor(value):
            skipped.append(key)
            continue
        if key == "conv1.weight" and value.shape[1] != own[key].shape[1]:
            value = value.sum(dim=1, keepdim=True) if own[key].shape[1] == 1 else value
        if value.shape != own[key].shape:
            raise ConfigError(
                f"{key} has shape {tuple(value.shape)}, the {encoder.label} encoder expects "
                f"{tuple(own[key].shape)} (is this a {encoder.label} file?)",
                path,
            )
        own[key] = value.to(own[key].dtype)
        loaded.append(key)
    if not loaded:
        raise ConfigError("no parameter in the file matches a torchvision ResNet (conv1, bn1, layer1..4)", path)
    # A ResNet of another depth shares many names; a partial load would silently mix weights and noise.
    foreign = [k for k in skipped if k.startswith(("conv1", "bn1", "layer"))]
    missing = [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]
    if foreign or missing:
        example = (foreign or missing)[0]
        raise ConfigError(
            f"the file does not fit the {encoder.label} encoder ({len(foreign)} extra and {len(missing)} "
            f"missing parameters, e.g. {example}); is it a {encoder.label} file?",
            path,
        )
    encoder.load_state_dict(own)
    return {"loaded": loaded, "skipped": skipped}
