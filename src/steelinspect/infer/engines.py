"""Inference engines: each maps a float32 batch (N, 1, H, W) to logits as a NumPy array.

TorchEngine runs the run's PyTorch model; other engines (ONNX Runtime) plug in behind the same call.
"""

from __future__ import annotations

import numpy as np
import torch

from steelinspect.train.checkpoint import LoadedRun


class TorchEngine:
    name = "torch"

    def __init__(self, run: LoadedRun, device: torch.device):
        self.run = run
        self.device = device
        self.model = run.model.to(device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device)
        return self.model(x).float().cpu().numpy()


def make_engine(run: LoadedRun, engine: str, device: torch.device):
    """The engine for a run: only 'torch' so far."""
    from steelinspect.errors import ConfigError

    if engine in ("auto", "torch"):
        return TorchEngine(run, device)
    raise ConfigError(f"unknown --engine {engine!r}")
