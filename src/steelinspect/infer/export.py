"""Export a run's model to ONNX (RUN_DIR/model.onnx) for ONNX Runtime.

The graph takes float32 "image" (batch, 1, H, W) -- batch dynamic, and H and W too for the fully convolutional
segmenter -- and returns "logits". The run's preprocessing, task and decision parameters are recorded in the
model's metadata, so the file is self-describing (for people: the engine trusts none of it). At export time
ONNX Runtime's outputs are checked against PyTorch's on random inputs; a mismatch beyond tolerance is an error and
leaves no file behind. The file's SHA-256 is then stored in model.pt, which the engine checks at load.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from steelinspect.errors import ConfigError, RunError
from steelinspect.io import atomic_write
from steelinspect.runs.files import INT8_FILE, ONNX_FILE
from steelinspect.runs.store import load_run, update_model_params

OPSET = 17


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float
    checked_shape: tuple[int, ...]


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the onnx and onnxruntime packages: pip install 'steelinspect[onnx]'") from None


def export_onnx(run_dir: str | Path, atol: float = 1e-3, rtol: float = 1e-3) -> ExportReport:
    """Write RUN_DIR/model.onnx and check it against PyTorch; returns the largest absolute difference."""
    _require_onnx()
    import onnx
    import onnxruntime as ort

    run_dir = Path(run_dir)
    run = load_run(run_dir, "cpu")
    model = run.model.eval()
    height, width = run.preprocess.size
    segment = run.head == "segment"
    axes = {0: "batch", 2: "height", 3: "width"} if segment else {0: "batch"}
    example = torch.randn(2, 1, height, width)
    target = run_dir / ONNX_FILE
    with atomic_write(target) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(model, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": axes, "logits": axes}, opset_version=OPSET, dynamo=False)
        graph = onnx.load(str(tmp))
        meta = {
            "steelinspect_head": run.head,
            "steelinspect_arch": run.arch,
            "steelinspect_weights_id": run.weights_id,
            "steelinspect_preprocess": json.dumps(run.preprocess.to_dict()),
            "steelinspect_thresholds": json.dumps(run.thresholds),
            "steelinspect_postprocess": json.dumps(run.postprocess),
        }
        for key, value in meta.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
        # Check on a different batch size than the one traced, to exercise the dynamic axis.
        x = torch.randn(3, 1, height, width, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = model(x).numpy()
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": x.numpy()})[0]
        diff = float(np.abs(got - expected).max())
        if not np.allclose(got, expected, atol=atol, rtol=rtol):
            raise RunError(f"ONNX output differs from PyTorch by up to {diff:.2e} (tolerance {atol}); not exported",
                           run_dir)
        digest = file_sha256(tmp)
    # model.pt, not the graph's metadata (which anyone can copy), vouches for the file: the engine trusts a
    # model.onnx only when its bytes hash to this. Written after the rename: a crash in between leaves the
    # export unvouched (stale), never a wrong one trusted.
    update_model_params(run_dir, onnx={"sha256": digest, "weights_id": run.weights_id})
    return ExportReport(target, diff, tuple(x.shape))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def onnx_path(run_dir: str | Path, int8: bool = False) -> Path:
    return Path(run_dir) / (INT8_FILE if int8 else ONNX_FILE)


def require_onnx_model(run_dir: str | Path, int8: bool = False) -> Path:
    path = onnx_path(run_dir, int8)
    if not path.is_file():
        raise RunError(f"no {path.name}: export it first with `steelinspect export {run_dir} --format onnx"
                       f"{' --int8' if int8 else ''}`", run_dir)
    return path
