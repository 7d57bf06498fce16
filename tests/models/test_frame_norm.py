"""--frame-norm: BatchNorm that mixes each frame's own statistics in at inference (models/frame_norm.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steelinspect.errors import ConfigError
from steelinspect.infer.export import export_onnx
from steelinspect.models.factory import build_model
from steelinspect.models.frame_norm import FrameBatchNorm2d, plain_statistics
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.store import load_run
from steelinspect.train.loop import train
from tests.cli_runner import run_main


def _trained_bn(frame_weight: float) -> tuple[nn.BatchNorm2d, FrameBatchNorm2d]:
    """A BatchNorm2d with running statistics and affine parameters away from their starting values, and a
    FrameBatchNorm2d holding the same state."""
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(3)
    for _ in range(5):
        plain(torch.randn(8, 3, 6, 7) * 3 + 2)
    with torch.no_grad():
        plain.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
        plain.bias.copy_(torch.tensor([0.1, -0.3, 0.7]))
    mixed = FrameBatchNorm2d(3, frame_weight)
    mixed.load_state_dict(plain.state_dict())
    return plain.eval(), mixed.eval()


def test_eval_statistics_are_the_stated_mix():
    torch.manual_seed(3)
    x = torch.randn(4, 3, 6, 7) * torch.tensor([1.0, 4.0, 0.3]).view(1, 3, 1, 1) + 5
    plain, whole = _trained_bn(1.0)
    # Weight 1: each frame standardised with its own mean and variance, as instance normalisation does.
    expected = F.instance_norm(x, weight=plain.weight, bias=plain.bias, eps=plain.eps)
    # The variance is E[x^2] - E[x]^2 in float32: a channel of mean 5 and spread 0.3 keeps about 4 digits of it.
    assert torch.allclose(whole(x), expected, atol=1e-3)
    # Weight 0.5: half of each.
    _, half = _trained_bn(0.5)
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
    mean = 0.5 * mean + 0.5 * plain.running_mean.view(1, 3, 1, 1)
    var = 0.5 * var + 0.5 * plain.running_var.view(1, 3, 1, 1)
    manual = (x - mean) / torch.sqrt(var + plain.eps) * plain.weight.view(1, 3, 1, 1) + plain.bias.view(1, 3, 1, 1)
    assert torch.allclose(half(x), manual, atol=1e-3)
    assert not torch.allclose(half(x), plain(x), atol=1e-2)
    # Weight 0: plain BatchNorm.
    _, none = _trained_bn(0.0)
    assert torch.allclose(none(x), plain(x))


def test_training_is_plain_batchnorm():
    plain, mixed = _trained_bn(0.5)
    plain.train(), mixed.train()
    x = torch.randn(8, 3, 6, 7)
    assert torch.allclose(plain(x), mixed(x))
    assert torch.allclose(plain.running_mean, mixed.running_mean) and torch.allclose(plain.running_var, mixed.running_var)


def test_plain_statistics_inside_the_block_only():
    plain, mixed = _trained_bn(0.5)
    x = torch.randn(2, 3, 6, 7) * 2 + 1
    before = mixed(x)
    with plain_statistics(nn.Sequential(mixed)):
        assert torch.allclose(mixed(x), plain(x))
    assert mixed.frame_weight == 0.5 and torch.allclose(mixed(x), before)


@pytest.mark.parametrize("arch", ["vgg", "resnet18"])
def test_a_frame_is_scored_on_its_own(arch):
    """A frame's output does not depend on the frames batched with it, and the weights are plain BatchNorm's."""
    torch.manual_seed(1)
    plain = build_model(arch, 1)
    for _ in range(3):  # running statistics away from 0 / 1
        plain(torch.randn(4, 1, 64, 128))
    model = build_model(arch, 1, frame_norm=0.5)
    model.load_state_dict(plain.state_dict())  # the same keys: a plain run's weights fit
    assert sum(isinstance(m, FrameBatchNorm2d) for m in model.modules()) == sum(
        type(m) is nn.BatchNorm2d for m in plain.modules()) > 0
    model.eval(), plain.eval()
    a, b, c = torch.randn(3, 1, 1, 64, 128).unbind(0)
    with torch.no_grad():
        alone = model(a)
        assert torch.allclose(model(torch.cat([a, b]))[:1], alone, atol=1e-5)
        assert torch.allclose(model(torch.cat([c, a, b]))[1:2], alone, atol=1e-5)
        shifted = a * 3 + 2  # unlike what the running statistics saw: the two models part
        assert (plain(shifted) - model(shifted)).abs().max() > 1e-4  # (an untrained head: small, not nil)


@pytest.mark.parametrize("arch", ["vgg", "resnet18"])
def test_a_fresh_model_exports_to_a_graph_onnx_runtime_runs(arch, tmp_path):
    """The TorchScript exporter's constant folding once wrote a graph ONNX Runtime refused for one spelling of the
    mix (models/frame_norm.py): export an untrained model as infer/export.py does and run it."""
    import onnxruntime as ort

    from steelinspect.infer.export import OPSET

    torch.manual_seed(2)
    model = build_model(arch, 1, frame_norm=0.5).eval()
    x = torch.randn(3, 1, 64, 128) * 2 + 1
    torch.onnx.export(model, (x[:2],), str(tmp_path / "m.onnx"), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET, dynamo=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.allclose(session.run(None, {"image": x.numpy()})[0], model(x).numpy(), atol=1e-4)


def test_the_segmenter_and_bad_weights_are_refused(synth_dir, tmp_path):
    with pytest.raises(ConfigError, match="--frame-norm is for the classifiers"):
        build_model("unet_resnet18", 4, frame_norm=0.5)
    with pytest.raises(ConfigError, match="--frame-norm must lie in 0..1"):
        build_model("vgg", 1, frame_norm="0.5")  # a hostile config.json's value is refused, not converted
    code, _, err = run_main("train", "binary", str(synth_dir), "--out", str(tmp_path / "r"), "--frame-norm", "1.5")
    assert code == 1 and "--frame-norm must lie in 0..1" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_training_and_the_epoch_choice_are_plain_the_decisions_are_not(synth_dir, tmp_path):
    """Same seed with and without --frame-norm: the same training and the same validation history (the best epoch
    is chosen with plain BatchNorm), but thresholds and scores from the mixed statistics."""
    runs = {}
    for weight in (0.0, 0.5):
        config = TrainConfig(task="binary", data=synth_dir, out=tmp_path / f"run{weight}", epochs=2, batch_size=8,
                             image_size=(64, 128), workers=0, frame_norm=weight)
        runs[weight] = train(config, progress=False)
    history = [json.loads((runs[w] / "history.json").read_text()) for w in (0.0, 0.5)]
    drop = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in h]  # noqa: E731
    assert drop(history[0]) == drop(history[1])
    plain_state = torch.load(runs[0.0] / "model.pt", weights_only=True)["state_dict"]
    mixed_state = torch.load(runs[0.5] / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(plain_state[k], mixed_state[k]) for k in plain_state)
    metrics = [json.loads((runs[w] / "metrics.json").read_text()) for w in (0.0, 0.5)]
    assert metrics[0]["val"]["loss"] != metrics[1]["val"]["loss"]


@pytest.mark.slow
def test_a_run_keeps_it_through_loading_and_onnx(synth_dir, tmp_path):
    config = TrainConfig(task="binary", data=synth_dir, out=tmp_path / "run", epochs=1, batch_size=8,
                         image_size=(64, 128), workers=0, frame_norm=0.5)
    run_dir = train(config, progress=False)
    assert json.loads((run_dir / "config.json").read_text())["frame_norm"] == 0.5
    run = load_run(run_dir)
    assert any(isinstance(m, FrameBatchNorm2d) and m.frame_weight == 0.5 for m in run.model.modules())
    report = export_onnx(run_dir)
    assert report.max_abs_diff < 1e-3
    import onnxruntime as ort

    session = ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 1, 64, 128)).astype(np.float32)
    name = session.get_inputs()[0].name
    together = session.run(None, {name: x})[0]
    alone = session.run(None, {name: x[1:2]})[0]
    assert np.allclose(together[1:2], alone, atol=1e-4)  # the exported graph scores each frame on its own too
    with torch.no_grad():
        assert np.allclose(run.model(torch.from_numpy(x)).numpy(), together, atol=1e-3)
