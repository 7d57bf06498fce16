"""Training-speed settings: mixed precision (--precision), channels-last memory format, torch.compile.

Only the training steps use them: evaluation, the best-epoch choice and the final metrics run the model in fp32
(the weights are always fp32; autocast only changes the arithmetic of the forward pass), so metrics from runs at
different precisions compare directly and match what `predict` computes at its default fp32.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from steelinspect.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """ConfigError when `device` cannot train at `precision`: fp16 needs CUDA (its GradScaler), bf16 a CPU or a
    CUDA device with bf16 support."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (it trains with a GradScaler); {device} can use "
                          "bf16 or fp32")
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support; use "
                              "fp16 or fp32")
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"--precision bf16 trains on CPU or CUDA, not {device.type}; use fp32")


class Precision:
    """Autocast for the forward pass and loss, and (fp16) the GradScaler for the backward pass and step."""

    def __init__(self, precision: str, device: torch.device):
        self.dtype = DTYPES.get(precision)
        self.device_type = device.type
        # A disabled scaler passes the loss and step through unchanged (fp32, bf16: bf16 has fp32's range).
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        """Plain numbers ({} unless fp16), so checkpoint.pt still loads with weights_only=True."""
        return {k: (float(v) if isinstance(v, float) else int(v) if isinstance(v, int) else v)
                for k, v in self.scaler.state_dict().items()}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.scaler.load_state_dict(state)


def channels_last(model: nn.Module) -> nn.Module:
    """The model's 4-d weights in channels-last (NHWC) layout; batches follow with `to_device`."""
    return model.to(memory_format=torch.channels_last)


def to_device(x: torch.Tensor, device: torch.device, nhwc: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if nhwc else x


def compiled(net: nn.Module) -> nn.Module:
    """torch.compile of the training model. Compilation happens at the first batch; `compile_error` turns a
    failure there into one line."""
    return torch.compile(net)


def compile_error(exc: Exception) -> ConfigError:
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return ConfigError(f"--compile failed on this platform ({type(exc).__name__}: {detail[:200]}); train without "
                       "--compile")
