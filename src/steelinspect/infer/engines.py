"""Inference engines: each maps a float32 batch (N, 1, H, W) to logits as a NumPy array.

- TorchEngine runs the run's PyTorch model (CUDA when present) in channels-last memory format, which pays on the
  CPU too (measured here, 2 threads: VGG at 256x512 1.5x, UNet-ResNet18 at 256x1600 1.4x), optionally under
  bfloat16 autocast (`--precision bf16`: 3.5-3.8x over plain fp32 on this machine's AMX-capable Xeon; slow on
  CPUs without native bfloat16, so never the default).
- OnnxEngine runs RUN_DIR/model.onnx on ONNX Runtime (`steelinspect export RUN_DIR --format onnx`), or, as
  `--engine int8`, RUN_DIR/model.int8.onnx (`... --int8`: statically quantized, accuracy-guarded, infer/quantize.py).
`--engine auto` picks, on CPU: the int8 export when up to date, else the float export when up to date, else
PyTorch (saying why it passed over an export). Up to date means the file's bytes hash to the SHA-256 that
`steelinspect export` stored in model.pt, with the run's current weights fingerprint (see runs/store.py): re-tuned
thresholds or post-processing keep an export valid; new weights, or any other graph (whatever its metadata
says), do not.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from steelinspect.errors import ConfigError, RunError
from steelinspect.infer.config import PredictConfig
from steelinspect.runs.files import MODEL_FILE
from steelinspect.runs.ensemble import Ensemble, average_as_logits, member_input
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

    def __init__(self, run: LoadedRun, threads: int | None = None, int8: bool = False):
        import onnxruntime as ort

        from steelinspect.infer.export import require_onnx_model

        path = require_onnx_model(run.run_dir, int8=int8)
        # The session is built from the very bytes checked, so the file cannot change in between.
        graph = path.read_bytes()
        check_export(run, path, graph, int8=int8)
        if int8:
            self.name = "int8"
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


def check_export(run: LoadedRun, path, graph: bytes, int8: bool = False) -> None:
    """StaleExport unless `graph` (model.onnx's bytes, or model.int8.onnx's with `int8`) is what `steelinspect
    export` wrote for the run's current weights, as recorded in model.pt. The graph's own metadata is not evidence:
    anyone can copy it into another graph. Cost, read + SHA-256 (measured on 2 shared cores): 3 ms for a 3.4 MB
    VGG export, 90 ms for the 43 MB UNet-ResNet18 one, beside ONNX Runtime's own 27 ms and 270 ms to build the
    session."""
    import hashlib

    again = f"export it again with `steelinspect export {run.run_dir} --format onnx{' --int8' if int8 else ''}`"
    record = (run.int8_export if int8 else run.onnx_export) or {}
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


class EnsembleEngine:
    """An ensemble's members, each on its own engine (as make_engine picks for it: an int8 or float export where
    the member has an up-to-date one), on the same batch (shrunk for a member at a smaller size, as the ensemble's
    own module does: runs/ensemble.member_input); returns logits whose activation is the members' mean
    probability (runs/ensemble.average_as_logits)."""

    def __init__(self, run: Ensemble, engines: list):
        self.run, self.engines = run, engines
        self.name = "+".join(dict.fromkeys(e.name for e in engines))
        self.note = "; ".join(dict.fromkeys(f"{m.run_dir.name}: {e.note}" for m, e in zip(run.members, engines)
                                            if e.note))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)  # shares the array's memory; a member at the ensemble's size gets it as is
        logits = [torch.from_numpy(np.asarray(engine(member_input(x, self.run.preprocess, member.preprocess).numpy()),
                                              dtype=np.float32))
                  for member, engine in zip(self.run.members, self.engines)]
        return average_as_logits(logits, self.run.head).numpy()


def make_engine(run: LoadedRun, config: PredictConfig):
    """The engine for a run (an ensemble: one per member, averaged, EnsembleEngine). auto: on CPU with fp32 asked for, the up-to-date int8 export, else the up-to-date
    float export (ONNX Runtime), else PyTorch; PyTorch on CUDA or with bf16."""
    from steelinspect.device import resolve_device
    from steelinspect.infer.export import onnx_path

    config.validate()
    if isinstance(run, Ensemble):
        return EnsembleEngine(run, [make_engine(member, config) for member in run.members])
    device = resolve_device(config.device)
    if config.engine in ("onnx", "int8"):
        if device.type != "cpu":
            raise ConfigError(f"--engine {config.engine} runs on the CPU; use --engine torch for CUDA")
        if not _onnxruntime():
            raise ConfigError(f"--engine {config.engine} needs onnxruntime: pip install 'steelinspect[onnx]'")
        return OnnxEngine(run, threads=config.threads, int8=config.engine == "int8")
    notes = []
    if config.engine == "auto" and config.precision == "fp32" and device.type == "cpu" and _onnxruntime():
        for int8 in (True, False):
            if not onnx_path(run.run_dir, int8=int8).is_file():
                continue
            try:
                engine = OnnxEngine(run, threads=config.threads, int8=int8)
            except StaleExport as exc:
                notes.append(f"{'not using the int8 model' if int8 else 'using PyTorch'}: {exc}")
                continue
            engine.note = "; ".join(notes)
            return engine
    if config.threads:  # PyTorch's thread pool is per process: set it for the engine this process runs
        torch.set_num_threads(config.threads)
    return TorchEngine(run, device, config.precision, note="; ".join(notes))
