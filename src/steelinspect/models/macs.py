"""Multiply-accumulates of one forward pass, counted by forward hooks on the layers that carry nearly all of them
(Conv2d, ConvTranspose2d, Linear). Batch norm, activations, pooling, upsampling and additions are left out: they are
a fraction of a percent of a conv net's MACs and run at memory speed, not at the multiply-add ceiling a roofline
compares against.

- Conv2d: every output element costs (in_channels / groups) * kh * kw MACs.
- ConvTranspose2d: every *input* element is scattered over out_channels / groups * kh * kw outputs, so the count is
  input elements * (out_channels / groups) * kh * kw (the same as the convolution it is the gradient of).
- Linear: every output element costs in_features MACs.
Bias additions are not counted (one add, no multiply).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class MacCount:
    total: int = 0  # MACs of the whole forward pass (for the batch given)
    by_layer: dict[str, int] = field(default_factory=dict)  # module name -> MACs (repeated calls add up)


def layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """MACs of one call of a Conv2d, ConvTranspose2d or Linear layer; 0 for any other module."""
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


@torch.no_grad()
def count_macs(model: nn.Module, shape: tuple[int, ...], device: str | torch.device = "cpu") -> MacCount:
    """MACs of `model` on one zero input of `shape` (batch included: (1, C, H, W) gives MACs per image). The model
    is run once in eval mode on `device` and left as it was (mode and hooks)."""
    count = MacCount()
    counted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = []

    def hook(name: str):
        def fn(module, inputs, output):
            macs = layer_macs(module, inputs, output)
            count.by_layer[name] = count.by_layer.get(name, 0) + macs
            count.total += macs
        return fn

    for name, module in model.named_modules():
        if isinstance(module, counted):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return count
