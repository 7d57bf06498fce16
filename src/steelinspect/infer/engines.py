"""Inference engines: each maps a float32 batch (N, 1, H, W) to logits as a NumPy array.

- TorchEngine runs the run's PyTorch model (CUDA when present).
- OnnxEngine runs RUN_DIR/model.onnx on ONNX Runtime (`steelinspect export RUN_DIR --format onnx`).
`--engine auto` picks ONNX Runtime on CPU when the run has an up-to-date model.onnx, PyTorch otherwise.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from steelinspect.errors import ConfigError, RunError
from steelinspect.train.checkpoint import MODEL_FILE, LoadedRun

ENGINES = ("auto", "torch", "onnx")


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


class OnnxEngine:
    name = "onnx"

    def __init__(self, run: LoadedRun, threads: int | None = None):
        import onnxruntime as ort

        from steelinspect.infer.export import require_onnx_model

        path = require_onnx_model(run.run_dir)
        if path.stat().st_mtime < (run.run_dir / MODEL_FILE).stat().st_mtime:
            raise RunError(f"{path.name} is older than {MODEL_FILE}: export it again with "
                           f"`steelinspect export {run.run_dir} --format onnx`", run.run_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.run = run
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]


def onnx_ready(run: LoadedRun) -> bool:
    """An up-to-date model.onnx and ONNX Runtime installed."""
    from steelinspect.infer.export import onnx_path

    path = onnx_path(run.run_dir)
    if not path.is_file() or path.stat().st_mtime < (run.run_dir / MODEL_FILE).stat().st_mtime:
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_engine(run: LoadedRun, engine: str, device: torch.device):
    """The engine for a run. auto: ONNX Runtime on CPU when the run has been exported, PyTorch otherwise."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "onnx":
        if device.type != "cpu":
            raise ConfigError("--engine onnx runs on the CPU; use --engine torch for CUDA")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ConfigError("--engine onnx needs onnxruntime: pip install 'steelinspect[onnx]'") from None
        return OnnxEngine(run)
    if engine == "auto" and device.type == "cpu" and onnx_ready(run):
        return OnnxEngine(run)
    return TorchEngine(run, device)
