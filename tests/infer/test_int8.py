"""INT8 export: written and vouched for only within the accuracy guard, predictions close to float, chosen by
--engine auto on CPU, and refused when tampered with or stale, like the float export."""

import hashlib
import shutil

import numpy as np
import onnx
import pytest
import torch

from steelinspect.errors import ConfigError, RunError
from steelinspect.infer.cascade import Cascade
from steelinspect.infer.config import Int8Config, PredictConfig
from steelinspect.infer.engines import make_engine
from steelinspect.infer.export import export_onnx
from steelinspect.infer.quantize import export_int8
from steelinspect.runs.store import load_run, read_model_file, weights_id
from tests.cli_runner import run_cli

pytestmark = pytest.mark.slow
NAMES = ("binary", "multiclass", "segment")


@pytest.fixture(scope="module")
def int8_runs(tiny_runs, tiny_segment_run, tmp_path_factory):
    """Copies of the three tiny runs with a float and an int8 export each (shared, do not modify)."""
    root = tmp_path_factory.mktemp("int8")
    sources = {**tiny_runs, "segment": tiny_segment_run}
    runs, reports = {}, {}
    for name in NAMES:
        runs[name] = shutil.copytree(sources[name], root / name)
        export_onnx(runs[name])
        reports[name] = export_int8(runs[name], Int8Config(calibration=8))
    return runs, reports


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("name", NAMES)
def test_export_writes_the_file_and_records_the_guard(int8_runs, name):
    runs, reports = int8_runs
    report, path = reports[name], runs[name] / "model.int8.onnx"
    assert report.path == path and path.is_file()
    record = read_model_file(runs[name])["int8"]
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["weights_id"] == load_run(runs[name]).weights_id
    assert record["metric"] == {"binary": "f1", "multiclass": "macro_f1", "segment": "dice_kaggle"}[name]
    assert record["tolerance"] == (0.003 if name == "segment" else 0.01)
    assert record["float"] == report.float_score and record["int8"] == report.int8_score
    assert record["int8"] >= record["float"] - record["tolerance"]
    assert record["activations"] in ("u8", "s8") and 1 <= record["calibration"] <= 8
    assert record["images"] == len(__import__("json").loads((runs[name] / "splits.json").read_text())["val"])
    graph = onnx.load(str(path))
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["steelinspect_precision"].startswith("int8") and meta["steelinspect_weights_id"] == record["weights_id"]
    # the first convolution and the logits layer stay float by default
    assert len(record["kept_float"]) == 2 and all(n in {x.name for x in graph.graph.node} for n in record["kept_float"])


def test_the_guard_refuses_leaving_nothing_behind(tiny_runs, tmp_path):
    run_dir = shutil.copytree(tiny_runs["binary"], tmp_path / "binary")
    export_onnx(run_dir)
    before = (run_dir / "model.pt").read_bytes()
    # A negative tolerance demands int8 beat float by that much: even an identical score must fail.
    with pytest.raises(RunError) as caught:
        export_int8(run_dir, Int8Config(calibration=4, tolerance_f1=-0.5))
    message = str(caught.value)
    assert "int8 f1" in message and "vs float" in message and "beyond the tolerance of -0.5 (--tolerance-f1)" in message
    assert "\n" not in message
    assert not (run_dir / "model.int8.onnx").exists()
    assert (run_dir / "model.pt").read_bytes() == before
    assert not [p for p in run_dir.iterdir() if "int8" in p.name or p.name.startswith(".")]

    with pytest.raises(RunError, match=r"data directory .*nowhere is not there.*\(give it with --data\)"):
        export_int8(run_dir, Int8Config(data=str(tmp_path / "nowhere")))
    assert (run_dir / "model.pt").read_bytes() == before


def test_the_cli_exports_int8_and_refuses_in_one_line(tiny_segment_run, tmp_path):
    run_dir = shutil.copytree(tiny_segment_run, tmp_path / "segment")
    proc = run_cli("export", run_dir, "--int8", "--tolerance-dice", "-1")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "int8 dice_kaggle" in lines[0] and "beyond the tolerance of -1 (--tolerance-dice)" in lines[0]
    assert not (run_dir / "model.int8.onnx").exists() and "int8" not in read_model_file(run_dir)

    proc = run_cli("export", run_dir, "--int8", "--calibration", "2", "--activations", "s8")
    assert proc.returncode == 0, proc.stderr
    assert "model.int8.onnx (S8S8, calibrated on 2 images)" in proc.stdout and "dice_kaggle int8" in proc.stdout
    assert read_model_file(run_dir)["int8"]["activations"] == "s8"

    proc = run_cli("export", run_dir, "--int8", "--activations", "u16")
    assert proc.returncode == 1 and "--activations" in proc.stderr


@pytest.mark.parametrize("name", NAMES)
def test_int8_predictions_are_close_to_float(int8_runs, synth_dir, name):
    runs, _ = int8_runs
    run = load_run(runs[name])
    x = np.stack([run.preprocess(img) for img in _images(synth_dir, 6)])
    fp32 = make_engine(run, PredictConfig(device="cpu", engine="onnx"))(x)
    int8 = make_engine(run, PredictConfig(device="cpu", engine="int8"))(x)
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    # Probabilities: int8 rounding moves them by a few hundredths at most on these models.
    assert np.abs(sigmoid(int8) - sigmoid(fp32)).max() < 0.1
    assert np.abs(sigmoid(int8) - sigmoid(fp32)).mean() < 0.02


def _images(data, n):
    from steelinspect.data.images import read_gray

    return [read_gray(p) for p in sorted((data / "train_images").iterdir())[:n]]


def test_auto_prefers_int8_on_cpu(int8_runs, tiny_runs):
    runs, _ = int8_runs
    run = load_run(runs["segment"])
    assert make_engine(run, PredictConfig(device="cpu")).name == "int8"
    assert make_engine(run, PredictConfig(device="cpu", engine="onnx")).name == "onnx"
    assert make_engine(run, PredictConfig(device="cpu", engine="torch")).name == "torch"
    assert make_engine(run, PredictConfig(device="cpu", precision="bf16")).name == "torch"
    with pytest.raises(ConfigError, match="bf16 runs on PyTorch"):
        make_engine(run, PredictConfig(device="cpu", engine="int8", precision="bf16"))
    cascade = Cascade.from_runs(runs["binary"], runs["multiclass"], PredictConfig(device="cpu"))
    assert cascade.binary_engine.name == cascade.multi_engine.name == "int8" and cascade.notes == []
    with pytest.raises(RunError, match=r"no model.int8.onnx: export it first with `steelinspect export .* --int8`"):
        make_engine(load_run(tiny_runs["binary"]), PredictConfig(device="cpu", engine="int8"))


def test_a_tampered_or_stale_int8_export_is_refused(int8_runs, tmp_path):
    runs, _ = int8_runs
    run_dir = shutil.copytree(runs["binary"], tmp_path / "binary")
    target = run_dir / "model.int8.onnx"
    graph = onnx.load(str(target))
    graph.metadata_props.add().key = "edited"  # any change to the bytes
    onnx.save(graph, str(target))
    engine = make_engine(load_run(run_dir), PredictConfig(device="cpu"))
    assert engine.name == "onnx"  # the float export is still good
    assert engine.note.startswith(f"not using the int8 model: {target}: not the graph exported from this run")
    with pytest.raises(RunError, match="not the graph exported from this run.*--format onnx --int8"):
        make_engine(load_run(run_dir), PredictConfig(device="cpu", engine="int8"))

    # New weights make both exports stale: auto falls back to PyTorch, saying why for each.
    blob = read_model_file(run_dir)
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first] = blob["state_dict"][first] + 1.0
    blob["weights_id"] = weights_id(blob["state_dict"])
    torch.save(blob, run_dir / "model.pt")
    engine = make_engine(load_run(run_dir), PredictConfig(device="cpu"))
    assert engine.name == "torch" and "not using the int8 model" in engine.note and "using PyTorch" in engine.note
    with pytest.raises(RunError, match="exported from other weights"):
        make_engine(load_run(run_dir), PredictConfig(device="cpu", engine="int8"))


def test_predict_runs_the_whole_pipeline_on_int8(int8_runs, synth_dir, tmp_path):
    import pandas as pd

    runs, _ = int8_runs
    out = {}
    for engine in ("int8", "onnx"):
        proc = run_cli("predict", synth_dir / "train_images", "--binary", runs["binary"], "--multiclass",
                       runs["multiclass"], "--segment", runs["segment"], "--engine", engine, "--workers", "1",
                       "--out", tmp_path / f"{engine}.csv", "--submission", tmp_path / f"{engine}-sub.csv")
        assert proc.returncode == 0, proc.stderr
        out[engine] = pd.read_csv(tmp_path / f"{engine}.csv")
    assert len(out["int8"]) == len(out["onnx"]) == 64
    # int8 moves probabilities by little: the defect calls nearly all agree with the float export's.
    assert np.abs(out["int8"].p_defect - out["onnx"].p_defect).max() < 0.1
    assert (out["int8"].has_defect == out["onnx"].has_defect).mean() >= 0.9


def test_quantizing_leaves_nothing_in_the_working_directory(int8_runs, tmp_path, monkeypatch):
    # onnxruntime's symbolic shape inference, failing on the segmenter's dynamic sides, left a copy of the weights
    # (UUID.data) in the current directory; the export must leave nothing anywhere but the run.
    runs, _ = int8_runs
    run_dir = shutil.copytree(runs["segment"], tmp_path / "segment")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    export_int8(run_dir, Int8Config(calibration=2))
    assert list(cwd.iterdir()) == []
