"""ONNX export and the ONNX Runtime engine give PyTorch's predictions."""

import shutil
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from steelinspect.errors import RunError
from steelinspect.infer.cascade import Cascade, PredictConfig, predict
from steelinspect.infer.export import export_onnx
from steelinspect.runs.store import load_run
from tests.cli_runner import run_cli

pytestmark = pytest.mark.slow
COLUMNS = ["p_defect", "p_class_1", "p_class_2", "p_class_3", "p_class_4"]


@pytest.fixture(scope="module")
def exported(tiny_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    runs = {name: shutil.copytree(path, root / name) for name, path in tiny_runs.items()}
    for path in runs.values():
        report = export_onnx(path)
        assert report.path == path / "model.onnx" and report.max_abs_diff < 1e-3
    return runs


def test_metadata_and_dynamic_batch(exported):
    model = onnx.load(str(exported["binary"] / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["steelinspect_head"] == "binary" and '"height": 64' in meta["steelinspect_preprocess"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[2].dim_value == 64


@pytest.mark.parametrize("source", ["synthetic", "real"])
def test_onnx_predictions_match_torch(exported, synth_dir, real_sample, source):
    images = synth_dir / "train_images" if source == "synthetic" else real_sample / "train_images"
    out = {}
    for engine in ("torch", "onnx"):
        config = PredictConfig(batch_size=5, workers=2, device="cpu", engine=engine)
        cascade = Cascade.from_runs(exported["binary"], exported["multiclass"], config)
        assert cascade.binary_engine.name == engine
        out[engine] = pd.DataFrame(list(predict(images, cascade, config)))
    assert np.allclose(out["torch"][COLUMNS].to_numpy(), out["onnx"][COLUMNS].to_numpy(), atol=1e-4)
    agree = (out["torch"].classes == out["onnx"].classes).mean()
    assert agree >= 0.95  # a probability within 1e-4 of a threshold may flip; nearly all must agree


def test_auto_engine_prefers_onnx_on_cpu(exported, tiny_runs):
    config = PredictConfig(device="cpu", engine="auto")
    assert Cascade.from_runs(exported["binary"], exported["multiclass"], config).binary_engine.name == "onnx"
    assert Cascade.from_runs(tiny_runs["binary"], tiny_runs["multiclass"], config).binary_engine.name == "torch"


def test_onnx_engine_without_export_says_how(tiny_runs, synth_dir, tmp_path):
    with pytest.raises(RunError, match="steelinspect export"):
        Cascade.from_runs(tiny_runs["binary"], tiny_runs["multiclass"], PredictConfig(device="cpu", engine="onnx"))
    proc = subprocess.run([sys.executable, "-m", "steelinspect", "predict", str(synth_dir / "train_images"),
                           "--binary", str(tiny_runs["binary"]), "--multiclass", str(tiny_runs["multiclass"]),
                           "--engine", "onnx", "--out", str(tmp_path / "p.csv")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "export it first with `steelinspect export" in proc.stderr


def test_retuned_parameters_keep_the_export_new_weights_make_it_stale(exported, tmp_path):
    import torch

    from steelinspect.runs.store import read_model_file, update_model_params, weights_id

    runs = {name: shutil.copytree(path, tmp_path / name) for name, path in exported.items()}
    config = PredictConfig(device="cpu", engine="auto")
    update_model_params(runs["binary"], thresholds=[0.3])  # model.pt is now newer than model.onnx
    assert Cascade.from_runs(runs["binary"], runs["multiclass"], config).binary_engine.name == "onnx"

    blob = read_model_file(runs["binary"])
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first] = blob["state_dict"][first] + 1.0  # new weights, as after training further
    blob["weights_id"] = weights_id(blob["state_dict"])
    torch.save(blob, runs["binary"] / "model.pt")
    assert Cascade.from_runs(runs["binary"], runs["multiclass"], config).binary_engine.name == "torch"
    with pytest.raises(RunError, match="exported from other weights"):
        Cascade.from_runs(runs["binary"], runs["multiclass"], PredictConfig(device="cpu", engine="onnx"))


def _graph_with_metadata(graph_path, metadata_from, out_path, perturb=False):
    """`graph_path`'s graph carrying `metadata_from`'s metadata (the weights fingerprint included)."""
    from onnx import numpy_helper

    graph = onnx.load(str(graph_path))
    if perturb:  # other weights, same structure
        init = graph.graph.initializer[0]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
    del graph.metadata_props[:]
    graph.metadata_props.extend(onnx.load(str(metadata_from)).metadata_props)
    onnx.save(graph, str(out_path))


@pytest.mark.parametrize("impostor", ["other weights", "another run's graph"])
def test_a_graph_with_copied_metadata_is_not_trusted(exported, synth_dir, tmp_path, impostor):
    runs = {name: shutil.copytree(path, tmp_path / name) for name, path in exported.items()}
    target = runs["binary"] / "model.onnx"
    source = target if impostor == "other weights" else runs["multiclass"] / "model.onnx"
    _graph_with_metadata(source, exported["binary"] / "model.onnx", target, perturb=impostor == "other weights")
    meta = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
    assert meta["steelinspect_weights_id"] == load_run(runs["binary"]).weights_id  # the old check passed this

    cascade = Cascade.from_runs(runs["binary"], runs["multiclass"], PredictConfig(device="cpu", engine="auto"))
    assert cascade.binary_engine.name == "torch" and cascade.multi_engine.name == "onnx"
    assert cascade.notes == [f"using PyTorch: {target}: not the graph exported from this run (its contents differ "
                             f"from what model.pt recorded at export): export it again with `steelinspect export "
                             f"{runs['binary']} --format onnx`"]
    with pytest.raises(RunError, match="not the graph exported from this run"):
        Cascade.from_runs(runs["binary"], runs["multiclass"], PredictConfig(device="cpu", engine="onnx"))
    proc = run_cli("predict", synth_dir / "train_images", "--binary", runs["binary"], "--multiclass",
                   runs["multiclass"], "--engine", "onnx", "--out", tmp_path / "p.csv")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert f"{target}: not the graph exported from this run" in lines[0]
    assert not (tmp_path / "p.csv").exists()


def test_an_export_model_pt_does_not_vouch_for_is_stale(exported, tmp_path):
    runs = {name: shutil.copytree(path, tmp_path / name) for name, path in exported.items()}
    blob = torch.load(runs["binary"] / "model.pt", weights_only=True)
    del blob["onnx"]  # as written by a steelinspect before this check, or a model.onnx dropped in by hand
    torch.save(blob, runs["binary"] / "model.pt")
    cascade = Cascade.from_runs(runs["binary"], runs["multiclass"], PredictConfig(device="cpu", engine="auto"))
    assert cascade.binary_engine.name == "torch" and "model.pt does not vouch for it" in cascade.notes[0]
    export_onnx(runs["binary"])  # exporting again vouches for it
    cascade = Cascade.from_runs(runs["binary"], runs["multiclass"], PredictConfig(device="cpu", engine="auto"))
    assert cascade.binary_engine.name == "onnx" and cascade.notes == []
