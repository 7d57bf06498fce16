"""ResNet-50 / ResNeXt-50 encoders (torchvision's names and shapes), the FPN decoder, and their --arch names."""

import pytest
import torch

from steelinspect.errors import ConfigError
from steelinspect.models.factory import build_model, encoder_of
from steelinspect.models.resnet import ResNetEncoder
from steelinspect.models.weights import load_torchvision_resnet


def torchvision_bottleneck_shapes(groups=1, width_per_group=64, layers=(3, 4, 6, 3)):
    """Names and shapes of torchvision's resnet50 / resnext50_32x4d state dict, written out from the
    architecture's definition (torchvision.models.resnet: Bottleneck, expansion 4, stride on the 3x3, a 1x1
    downsample on each stage's first block), not from our code."""
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    inplanes = 64
    for stage, (blocks, planes) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
        width = int(planes * (width_per_group / 64.0)) * groups
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            shapes[f"{p}.conv1.weight"] = (width, inplanes, 1, 1)
            bn(f"{p}.bn1", width)
            shapes[f"{p}.conv2.weight"] = (width, width // groups, 3, 3)
            bn(f"{p}.bn2", width)
            shapes[f"{p}.conv3.weight"] = (planes * 4, width, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 2048), (1000,)
    return shapes


VARIANTS = {
    # arch: (groups, width per group, torchvision's published parameter count with its RGB conv1 and fc)
    "resnet50": (1, 64, 25_557_032),
    "resnext50": (32, 4, 25_028_904),
}


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g)
            for k, s in shapes.items()}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_torchvision_file_loads_with_every_key_used(tmp_path, name):
    groups, per_group, published = VARIANTS[name]
    shapes = torchvision_bottleneck_shapes(groups, per_group)
    # Spot checks against torchvision's printed architecture.
    if name == "resnet50":
        assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1) and shapes["layer1.0.conv2.weight"] == (64, 64, 3, 3)
        assert shapes["layer1.0.conv3.weight"] == (256, 64, 1, 1) and shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    else:
        assert shapes["layer1.0.conv2.weight"] == (128, 4, 3, 3) and shapes["layer4.0.conv2.weight"] == (1024, 32, 3, 3)
    params = sum(torch.Size(s).numel() for k, s in shapes.items() if "running" not in k and "num_batches" not in k)
    assert params == published
    state = random_state(shapes)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    encoder = ResNetEncoder(name=name)
    report = load_torchvision_resnet(encoder, path)
    assert sorted(report["skipped"]) == ["fc.bias", "fc.weight"]
    assert sorted(report["loaded"]) == sorted(set(shapes) - {"fc.weight", "fc.bias"}) == sorted(encoder.state_dict())
    loaded = encoder.state_dict()
    assert torch.allclose(loaded["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(loaded["layer3.5.conv2.weight"], state["layer3.5.conv2.weight"])
    # The same file starts the classifier, the UNet and the FPN of that encoder.
    for arch in (name, f"unet_{name}", f"fpn_{name}"):
        model = build_model(arch, 4)
        load_torchvision_resnet(encoder_of(model), path)
        assert torch.equal(encoder_of(model).state_dict()["layer2.0.downsample.0.weight"],
                           state["layer2.0.downsample.0.weight"])


class _Touch:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_wrong_files_are_refused_in_one_line(tmp_path):
    encoder = ResNetEncoder(name="resnext50")
    torch.save(random_state(torchvision_bottleneck_shapes()), tmp_path / "r50.pth")  # a ResNet-50 file
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": _Touch(marker)}, tmp_path / "hostile.pth")
    expected = {"r50.pth": "is this a ResNeXt-50 (32x4d) file", "list.pth": "not a state dict",
                "hostile.pth": "not a weights file"}
    for file, problem in expected.items():
        with pytest.raises(ConfigError) as caught:
            load_torchvision_resnet(encoder, tmp_path / file)
        message = str(caught.value)
        assert problem in message and "\n" not in message and message.startswith(str(tmp_path / file))
    assert not marker.exists()
    # A ResNeXt-50 file does not fill a ResNet-50 either (same names, other shapes).
    torch.save(random_state(torchvision_bottleneck_shapes(32, 4)), tmp_path / "rx50.pth")
    with pytest.raises(ConfigError, match="is this a ResNet-50 file"):
        load_torchvision_resnet(ResNetEncoder(50), tmp_path / "rx50.pth")


NEW_SEGMENTERS = ["unet_resnet50", "unet_resnext50", "fpn_resnet18", "fpn_resnet34", "fpn_resnet50", "fpn_resnext50"]


@pytest.mark.parametrize("arch", ["resnet50", "resnext50", *NEW_SEGMENTERS])
def test_forward_shapes(arch):
    torch.manual_seed(0)
    model = build_model(arch, 4).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 64, 320))
    assert out.shape == ((1, 4) if arch.startswith("res") else (1, 4, 64, 320))
    assert torch.isfinite(out).all()


def test_encoder_channels():
    assert ResNetEncoder(name="resnet50").out_channels == [64, 256, 512, 1024, 2048]
    assert ResNetEncoder(name="resnext50").out_channels == [64, 256, 512, 1024, 2048]
    features = ResNetEncoder(name="resnext50")(torch.zeros(1, 1, 64, 128))
    assert [f.shape[-1] for f in features] == [64, 32, 16, 8, 4]


def test_fpn_refuses_sizes_not_multiple_of_32():
    with pytest.raises(ConfigError, match="FPN input is 64x100"):
        build_model("fpn_resnet18", 4)(torch.zeros(1, 1, 64, 100))


@pytest.mark.parametrize("arch", ["fpn_resnet18", "resnext50"])
def test_one_training_step(arch):
    torch.manual_seed(0)
    model = build_model(arch, 4)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(2, 1, 64, 128)
    y = torch.randint(0, 2, (2, 4, 64, 128) if arch.startswith("fpn") else (2, 4)).float()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    opt.step()
    after = dict(model.named_parameters())
    # The stem, the last residual branch's BN (zero-initialised: the branches start as identities) and the head
    # all learn in the first step.
    head = "head.weight" if arch.startswith("fpn") else "fc.weight"
    for name in ("encoder.conv1.weight", "encoder.layer4.2.bn3.weight" if "50" in arch else "encoder.layer4.1.bn2.weight", head):
        assert not torch.equal(before[name], after[name]), name
    assert torch.isfinite(loss)


def test_fpn_trains_through_the_loop_and_exports_to_onnx(tiny_seg_data, tmp_path):
    """The CLI's train command, then `export`: ONNX Runtime matches PyTorch, also at another image size."""
    import numpy as np

    pytest.importorskip("onnxruntime")
    from steelinspect.infer.export import export_onnx
    from steelinspect.runs.store import load_run
    from tests.cli_runner import run_main

    out = tmp_path / "fpn"
    code, _, err = run_main("train", "segment", tiny_seg_data, "--out", out, "--arch", "fpn_resnet18", "--epochs", "1",
                            "--batch-size", "4", "--image-size", "64x384", "--crop-width", "256", "--workers", "0",
                            "--device", "cpu")
    assert code == 0, err
    run = load_run(out)
    assert run.arch == "fpn_resnet18" and run.head == "segment" and run.postprocess
    report = export_onnx(out)
    assert report.max_abs_diff < 1e-3
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 1, 96, 320)  # another size than the one exported: H and W are dynamic
    with torch.no_grad():
        expected = run.model(x).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == (1, 4, 96, 320) and np.allclose(got, expected, atol=1e-3, rtol=1e-3)
