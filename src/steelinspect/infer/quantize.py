"""INT8 export: ONNX Runtime static quantization of a run's model.onnx (RUN_DIR/model.int8.onnx), kept only when
it scores like the float model on the run's own validation split.

- Weights are quantized per output channel (int8); activations to uint8 ("u8", U8S8) or int8 ("s8", S8S8), in
  the QDQ format. "auto" takes u8 on x86 (ONNX Runtime's fast x86 kernels are U8S8: the UNet-ResNet18 at 256x1600
  ran 1.5x fp32 with U8S8 and 1.0x with S8S8 on this project's AVX2 AMD EPYC, bench/int8.py; 2.66x against 1.38x
  was reported on an EPYC with VNNI) and s8 elsewhere (ARM's int8 dot products are signed).
- Activation ranges are calibrated (min/max) on `calibration` images of the validation split, spread evenly over
  it, preprocessed exactly as the run does.
- keep_float "ends" leaves the first convolution (on the raw normalised image) and the node producing the logits
  in float: they are a few percent of the multiply-accumulates and the most sensitive to rounding; "none"
  quantizes everything.
- The guard: the float and the int8 model score the whole validation split (step 1: F1 at the run's threshold;
  step 2: macro F1 at its thresholds, or of the argmax for a softmax head; segmenter: Kaggle Dice with the run's
  post-processing, ungated). When int8 falls short of float by more than the tolerance, the export fails, saying
  by how much, and nothing is written. Otherwise model.int8.onnx is written atomically and model.pt records its
  SHA-256 with the weights fingerprint and the guard's numbers, so the engine trusts it on the same rule as
  model.onnx (infer/engines.py). The calibration images are part of the validation split the guard scores: ranges
  from them are not fitted to labels, so this biases the comparison little.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE
from steelinspect.data.images import read_gray
from steelinspect.data.layout import data_dir
from steelinspect.data.master import RLE_COLUMNS, build_master
from steelinspect.data.splits import frames_from_ids
from steelinspect.errors import RunError
from steelinspect.infer.config import Int8Config
from steelinspect.io import atomic_write, read_json
from steelinspect.metrics.classification import binary_metrics, multiclass_metrics, multilabel_metrics
from steelinspect.metrics.dice import DiceCounts
from steelinspect.postprocess.activations import sigmoid, softmax
from steelinspect.postprocess.masks import PostProcess
from steelinspect.postprocess.segmenter import to_full_size
from steelinspect.runs.files import INT8_FILE, MODEL_FILE, SPLITS_FILE
from steelinspect.runs.store import LoadedRun, load_run, update_model_params

@dataclass
class Int8Report:
    path: Path
    metric: str  # f1 | macro_f1 | dice_kaggle
    float_score: float
    int8_score: float
    tolerance: float
    images: int  # validation images scored
    calibration: int  # of them, used for calibration
    activations: str  # u8 | s8
    kept_float: list[str] = field(default_factory=list)  # node names left in float
    seconds: float = 0.0

    @property
    def delta(self) -> float:
        return self.int8_score - self.float_score

    def record(self) -> dict:
        """The guard's numbers as model.pt stores them (with the file's SHA-256 and weights fingerprint)."""
        out = asdict(self)
        out.pop("path")
        out["float"], out["int8"] = out.pop("float_score"), out.pop("int8_score")
        return out


def resolve_activations(activations: str) -> str:
    """auto -> u8 on x86 (U8S8 kernels), s8 elsewhere."""
    if activations != "auto":
        return activations
    return "u8" if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") else "s8"


def int8_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / INT8_FILE


def export_int8(run_dir: str | Path, config: Int8Config | None = None) -> Int8Report:
    """Quantize RUN_DIR/model.onnx (which must be the run's current float export) to RUN_DIR/model.int8.onnx,
    guarded by the validation scores; RunError naming the drop, and nothing written, when it is too large."""
    from steelinspect.infer.engines import check_export
    from steelinspect.infer.export import _require_onnx, file_sha256, require_onnx_model

    _require_onnx()
    config = config or Int8Config()
    config.validate()
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run = load_run(run_dir, "cpu")
    float_path = require_onnx_model(run_dir)
    float_graph = float_path.read_bytes()
    check_export(run, float_path, float_graph)  # quantize only the graph model.pt vouches for
    frame = validation_frame(run, config.data)
    activations = resolve_activations(config.activations)
    n_calib = min(config.calibration, len(frame))
    calib_rows = np.unique(np.linspace(0, len(frame) - 1, n_calib).round().astype(int))
    calib_ids = frame.ImageId.iloc[calib_rows].tolist()
    images = data_dir(config.data or run.config.data).images

    calibration = (_load(images, image_id, run)[None] for image_id in calib_ids)
    try:
        int8_graph, kept = quantize_graph(float_graph, calibration, activations, config.keep_float)
    except RunError as exc:
        raise RunError(exc.problem, float_path) from None
    float_score, int8_score, metric = score_pair(run, frame, images, float_graph, int8_graph, config.batch_size)
    tolerance = config.tolerance_dice if metric == "dice_kaggle" else config.tolerance_f1
    report = Int8Report(int8_path(run_dir), metric, float_score, int8_score, tolerance, len(frame), len(calib_ids),
                        activations, kept)
    if report.delta < -tolerance:
        flag = "--tolerance-dice" if metric == "dice_kaggle" else "--tolerance-f1"
        raise RunError(f"int8 {metric} {int8_score:.4f} vs float {float_score:.4f} on {len(frame)} validation images: "
                       f"{report.delta:+.4f}, beyond the tolerance of {tolerance:g} ({flag}); model.int8.onnx not "
                       "written", run_dir)
    with atomic_write(report.path) as tmp_path:
        Path(tmp_path).write_bytes(int8_graph)
        digest = file_sha256(tmp_path)
    report.seconds = time.perf_counter() - started
    # As for model.onnx: recorded after the rename, so a crash in between leaves the file unvouched, never trusted.
    update_model_params(run_dir, int8={"sha256": digest, "weights_id": run.weights_id, **report.record()})
    return report


def validation_frame(run: LoadedRun, data: str | Path | None = None):
    """The run's validation split (master rows), from splits.json and the run's data directory (or `data`)."""
    splits_file = run.run_dir / SPLITS_FILE
    if not splits_file.is_file():
        raise RunError(f"no {SPLITS_FILE}: the int8 guard scores the run's validation split", run.run_dir)
    ids = read_json(splits_file).get("val") or []
    if not ids:
        raise RunError("the run has no validation images to calibrate and check an int8 model on", splits_file)
    data = Path(data or run.config.data)
    if not data.is_dir():
        raise RunError(f"the run's data directory {data} is not there: the int8 guard scores the run's "
                       "validation split (give it with --data)", run.run_dir / MODEL_FILE)
    return frames_from_ids(build_master(data), {"val": ids})["val"]


def _load(images: Path, image_id: str, run: LoadedRun) -> np.ndarray:
    return run.preprocess(read_gray(images / image_id))


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol: one preprocessed batch (N, 1, H, W) per call, then None."""

    def __init__(self, batches: Iterable[np.ndarray]):
        self._items = iter(batches)

    def get_next(self) -> dict | None:
        x = next(self._items, None)
        return None if x is None else {"image": np.ascontiguousarray(x, dtype=np.float32)}

    def rewind(self) -> None:  # not called by the MinMax calibrator; part of the protocol
        pass


def float_nodes(graph) -> list[str]:
    """The 'ends' kept in float: the convolutions reading the graph's input, and the node that produces the
    logits (walking back over a bias Add to its MatMul)."""
    inputs = {i.name for i in graph.graph.input}
    outputs = {o.name for o in graph.graph.output}
    producer = {out: node for node in graph.graph.node for out in node.output}
    names = [n.name for n in graph.graph.node if n.op_type == "Conv" and inputs.intersection(n.input)]
    for out in outputs:
        node = producer.get(out)
        if node is not None and node.op_type == "Add":
            node = next((producer[i] for i in node.input if i in producer and producer[i].op_type == "MatMul"), node)
        if node is not None and node.op_type in ("Conv", "Gemm", "MatMul", "Add"):
            names.append(node.name)
    return names


def quantize_graph(float_graph: bytes, calibration: Iterable[np.ndarray], activations: str = "u8",
                   keep_float: str = "ends") -> tuple[bytes, list[str]]:
    """The int8 graph (bytes) of a float graph, its activation ranges calibrated on `calibration` (preprocessed
    batches), and the names of the nodes kept float. No guard: export_int8 adds it (bench/int8.py times this)."""
    with tempfile.TemporaryDirectory(prefix="steelinspect-int8-") as tmp:
        return _quantize(float_graph, Path(tmp), calibration, activations, keep_float)


def _quantize(float_graph: bytes, tmp: Path, calibration: Iterable[np.ndarray], activations: str,
              keep_float: str) -> tuple[bytes, list[str]]:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, prepared, out = tmp / "float.onnx", tmp / "prepared.onnx", tmp / "int8.onnx"
    source.write_bytes(float_graph)
    # Folds constants, fuses and infers shapes first, as ONNX Runtime recommends before quantizing.
    # Symbolic shape inference is skipped: it fails on the segmenter's dynamic height and width, and when it fails
    # (onnxruntime 1.32) it leaves a copy of the weights in the current directory. ONNX's own inference suffices.
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    kept = float_nodes(onnx.load(str(prepared))) if keep_float == "ends" else []
    try:
        quantize_static(
            str(prepared), str(out), _Calibration(calibration),
            quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8 if activations == "u8" else QuantType.QInt8,
            # MinMax keeps only each tensor's min and max per image (ReduceMin/Max outputs): memory stays small.
            # (CalibMaxIntermediateOutputs is not used: onnxruntime 1.32 drops the data instead of merging it.)
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=kept,
        )
    except Exception as exc:  # onnxruntime raises its own types
        raise RunError(f"ONNX Runtime could not quantize it ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())[:160]})") from None
    graph = onnx.load(str(out))
    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    meta["steelinspect_precision"] = f"int8 ({activations.upper()}S8, per-channel weights, QDQ)"
    del graph.metadata_props[:]
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    return graph.SerializeToString(), kept


def _session(graph: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _batches(frame, images: Path, run: LoadedRun, size: int) -> Iterator[tuple[list, np.ndarray]]:
    rows = list(frame.itertuples(index=False))
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        yield part, np.stack([_load(images, r.ImageId, run) for r in part])


def score_pair(run: LoadedRun, frame, images: Path, float_graph: bytes, int8_graph: bytes,
               batch_size: int = 4) -> tuple[float, float, str]:
    """(float score, int8 score, metric name) of the two graphs on `frame`, in one pass over the images."""
    sessions = [_session(float_graph), _session(int8_graph)]
    head = run.head
    if head == "segment":
        post = PostProcess.from_dict(run.postprocess) if run.postprocess else PostProcess()
        counts = [DiceCounts(), DiceCounts()]
        for rows, x in _batches(frame, images, run, batch_size):
            truth = np.stack([np.stack([rle.decode(getattr(r, c), IMAGE_SHAPE) for c in RLE_COLUMNS]) for r in rows])
            ids = [r.ImageId for r in rows]
            for session, count in zip(sessions, counts):
                probs = sigmoid(session.run(None, {"image": x})[0].astype(np.float32))
                masks = np.stack([post(to_full_size(p))[0] for p in probs])  # ungated: no classifier here
                count.add_masks(ids, masks, truth)
        return counts[0].report().dice_kaggle, counts[1].report().dice_kaggle, "dice_kaggle"

    outputs = [[], []]
    for _, x in _batches(frame, images, run, batch_size):
        for session, out in zip(sessions, outputs):
            out.append(session.run(None, {"image": x})[0].astype(np.float32))
    logits = [np.concatenate(o) for o in outputs]
    if head == "binary":
        y = frame.Defect.to_numpy(dtype=int)
        scores = [binary_metrics(y, sigmoid(lg)[:, 0], (run.thresholds or [0.5])[0])["f1"] for lg in logits]
        return scores[0], scores[1], "f1"
    if head == "multilabel":
        y = np.zeros((len(frame), 4), dtype=int)
        for row, ids in enumerate(frame.ClassIds):
            y[row, [c - 1 for c in ids]] = 1
        scores = [multilabel_metrics(y, sigmoid(lg), run.thresholds or [0.5] * 4)["f1"] for lg in logits]
        return scores[0], scores[1], "macro_f1"
    y = np.array([ids[0] - 1 for ids in frame.ClassIds])  # softmax head: one class per image
    scores = [multiclass_metrics(y, softmax(lg))["f1"] for lg in logits]
    return scores[0], scores[1], "macro_f1"
