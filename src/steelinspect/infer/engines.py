"""Inference engines: each maps a float32 batch (N, 1, H, W) to logits as a NumPy array.

- TorchEngine runs the run's PyTorch model (CUDA when present) in channels-last memory format, which pays on the
  CPU too (measured here, 2 threads: VGG at 256x512 1.5x, UNet-ResNet18 at 256x1600 1.4x), optionally under
  bfloat16 autocast (`--precision bf16`: 3.5-3.8x over plain fp32 on this machine's AMX-capable Xeon; slow on
  CPUs without native bfloat16, so never the default).
- OnnxEngine runs RUN_DIR/model.onnx on ONNX Runtime (`steelinspect export RUN_DIR --format onnx`).
`--engine auto` picks ONNX Runtime on CPU when the run has an up-to-date model.onnx, PyTorch otherwise. Up to
date means exported from the run's current weights (their fingerprint, see runs/store.py; runs without
one compare file times), so re-tuned thresholds or post-processing keep an export valid.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from steelinspect.errors import ConfigError, RunError
from steelinspect.infer.config import PredictConfig
from steelinspect.runs.files import MODEL_FILE
from steelinspect.runs.store import LoadedRun



class TorchEngine:
    name = "torch"

    def __init__(self, run: LoadedRun, device: torch.device, precision: str = "fp32"):
        self.run = run
        self.device = device
        self.precision = precision
        self.model = run.model.to(device).eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model(x).float().cpu().numpy()


class OnnxEngine:
    name = "onnx"

    def __init__(self, run: LoadedRun, threads: int | None = None):
        import onnxruntime as ort

        from steelinspect.infer.export import require_onnx_model

        path = require_onnx_model(run.run_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.run = run
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        exported = self.session.get_modelmeta().custom_metadata_map.get("steelinspect_weights_id", "")
        stale = (exported != run.weights_id if run.weights_id
                 else path.stat().st_mtime < (run.run_dir / MODEL_FILE).stat().st_mtime)
        if stale:
            raise StaleExport(f"{path.name} was exported from other weights than {MODEL_FILE}'s: export it again "
                              f"with `steelinspect export {run.run_dir} --format onnx`", run.run_dir)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]


class StaleExport(RunError):
    """model.onnx does not hold the run's current weights."""


def _onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_engine(run: LoadedRun, config: PredictConfig):
    """The engine for a run. auto: ONNX Runtime on CPU when the run has an up-to-date export (and fp32 is asked
    for), PyTorch otherwise."""
    from steelinspect.device import resolve_device
    from steelinspect.infer.export import onnx_path

    config.validate()
    device = resolve_device(config.device)
    if config.engine == "onnx":
        if device.type != "cpu":
            raise ConfigError("--engine onnx runs on the CPU; use --engine torch for CUDA")
        if not _onnxruntime():
            raise ConfigError("--engine onnx needs onnxruntime: pip install 'steelinspect[onnx]'")
        return OnnxEngine(run)
    if (config.engine == "auto" and config.precision == "fp32" and device.type == "cpu"
            and onnx_path(run.run_dir).is_file() and _onnxruntime()):
        try:
            return OnnxEngine(run)
        except StaleExport:
            pass
    return TorchEngine(run, device, config.precision)
