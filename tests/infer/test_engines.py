"""Engines: channels-last and bfloat16 PyTorch give the plain model's answers; which engine `auto` picks."""

import shutil

import numpy as np
import pytest
import torch

from steelinspect.errors import ConfigError
from steelinspect.infer.config import PredictConfig
from steelinspect.infer.engines import TorchEngine, make_engine
from steelinspect.runs.store import load_run

pytestmark = pytest.mark.slow


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("name", ["binary", "multiclass", "segment"])
def test_channels_last_and_bf16_match_the_plain_model(tiny_runs, tiny_segment_run, name):
    run_dir = tiny_segment_run if name == "segment" else tiny_runs[name]
    run = load_run(run_dir)
    x = np.random.default_rng(0).normal(size=(3, 1, *run.preprocess.size)).astype(np.float32)
    with torch.inference_mode():
        plain = run.model(torch.from_numpy(x)).numpy()
    fp32 = TorchEngine(load_run(run_dir), torch.device("cpu"))(x)
    bf16 = TorchEngine(load_run(run_dir), torch.device("cpu"), precision="bf16")(x)
    assert fp32.dtype == bf16.dtype == np.float32 and fp32.shape == plain.shape
    assert np.allclose(fp32, plain, atol=1e-4)
    assert np.abs(sigmoid(bf16) - sigmoid(plain)).max() < 0.03  # bfloat16 keeps ~3 significant digits


def test_engine_choice_and_refusals(tiny_runs, tmp_path):
    from steelinspect.infer.export import export_onnx

    run_dir = shutil.copytree(tiny_runs["binary"], tmp_path / "binary")
    export_onnx(run_dir)
    run = load_run(run_dir)
    assert make_engine(run, PredictConfig(device="cpu")).name == "onnx"
    assert make_engine(run, PredictConfig(device="cpu", precision="bf16")).name == "torch"
    with pytest.raises(ConfigError, match="bf16 runs on PyTorch"):
        make_engine(run, PredictConfig(device="cpu", engine="onnx", precision="bf16"))
    for bad, message in ((dict(precision="fp8"), "--precision"), (dict(engine="tensorrt"), "--engine")):
        with pytest.raises(ConfigError, match=message):
            make_engine(run, PredictConfig(device="cpu", **bad))
