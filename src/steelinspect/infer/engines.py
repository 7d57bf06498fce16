"""Inference engines: each maps a float32 batch (N, 1, H, W) to logits as a NumPy array.

- TorchEngine runs the run's PyTorch model (CUDA when present) in channels-last memory format, which pays on the
  CPU too (measured here, 2 threads: VGG at 256x512 1.5x, UNet-ResNet18 at 256x1600 1.4x), optionally under
  bfloat16 autocast (`--precision bf16`: 3.5-3.8x over plain fp32 on this machine's AMX-capable Xeon; slow on
  CPUs without native bfloat16, so never the default).
- OnnxEngine runs RUN_DIR/model.onnx on ONNX Runtime (`steelinspect export RUN_DIR --format onnx`).
`--engine auto` picks ONNX Runtime on CPU when the run has an up-to-date model.onnx, PyTorch otherwise. Up to
date means model.onnx's bytes hash to the SHA-256 that `steelinspect export` stored in model.pt, with the run's
current weights fingerprint (see runs/store.py): re-tuned thresholds or post-processing keep an export
valid; new weights, or any other graph (whatever its metadata says), do not.
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

    def __init__(self, run: LoadedRun, device: torch.device, precision: str = "fp32", note: str = ""):
        self.run = run
        self.device = device
        self.precision = precision
        self.note = note  # why --engine auto passed over the run's model.onnx ("" when it did not)
        self.model = run.model.to(device).eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model(x).float().cpu().numpy()


class OnnxEngine:
    name = "onnx"
    note = ""

    def __init__(self, run: LoadedRun, threads: int | None = None):
        import onnxruntime as ort

        from steelinspect.infer.export import require_onnx_model

        path = require_onnx_model(run.run_dir)
        # The session is built from the very bytes checked, so the file cannot change in between.
        graph = path.read_bytes()
        check_export(run, path, graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.run = run
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types; the hash matched, so the file is ours
            raise RunError(f"ONNX Runtime cannot load it ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})",
                           path) from None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]


class StaleExport(RunError):
    """model.onnx is not the graph exported from the run's current weights."""


def check_export(run: LoadedRun, path, graph: bytes) -> None:
    """StaleExport unless `graph` (model.onnx's bytes) is what `steelinspect export` wrote for the run's current
    weights, as recorded in model.pt. The graph's own metadata is not evidence: anyone can copy it into another
    graph. Cost, read + SHA-256 (measured on 2 shared cores): 3 ms for a 3.4 MB VGG export, 90 ms for the 43 MB
    UNet-ResNet18 one, beside ONNX Runtime's own 27 ms and 270 ms to build the session."""
    import hashlib

    again = f"export it again with `steelinspect export {run.run_dir} --format onnx`"
    record = run.onnx_export or {}
    if not record.get("sha256"):
        raise StaleExport(f"{MODEL_FILE} does not vouch for it (exported by an older steelinspect, or not by "
                          f"`steelinspect export`): {again}", path)
    if record.get("weights_id") != run.weights_id:
        raise StaleExport(f"it was exported from other weights than {MODEL_FILE}'s: {again}", path)
    if hashlib.sha256(graph).hexdigest() != record["sha256"]:
        raise StaleExport(f"not the graph exported from this run (its contents differ from what {MODEL_FILE} "
                          f"recorded at export): {again}", path)


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
        except StaleExport as exc:
            return TorchEngine(run, device, config.precision, note=f"using PyTorch: {exc}")
    return TorchEngine(run, device, config.precision)
