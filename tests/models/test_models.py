import pytest
import torch

from steelinspect.errors import ConfigError
from steelinspect.models.factory import build_model, encoder_of
from steelinspect.models.resnet import ResNetEncoder
from steelinspect.models.weights import load_torchvision_resnet


@pytest.mark.parametrize("arch", ["vgg", "resnet18", "resnet34"])
@pytest.mark.parametrize("outputs", [1, 4])
def test_classifier_shapes(arch, outputs):
    model = build_model(arch, outputs).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 128)).shape == (2, outputs)
        assert model(torch.zeros(1, 1, 256, 512)).shape == (1, outputs)


def test_resnet_trains_one_step():
    torch.manual_seed(0)
    model = build_model("resnet18", 4)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(4, 1, 64, 128), torch.randint(0, 2, (4, 4)).float()
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_encoder_feature_strides():
    encoder = ResNetEncoder(18)
    features = encoder(torch.zeros(1, 1, 64, 128))
    assert [f.shape[-1] for f in features] == [64, 32, 16, 8, 4]
    assert [f.shape[1] for f in features] == encoder.out_channels


def test_unknown_arch():
    with pytest.raises(ConfigError, match="unknown --arch 'alexnet'"):
        build_model("alexnet", 1)


def fake_torchvision_state(depth=18):
    """A state dict laid out like torchvision's resnet: RGB conv1 and an ImageNet fc."""
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ResNetEncoder(depth).state_dict().items()}
    state["conv1.weight"] = torch.randn(64, 3, 7, 7)
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return state


def test_loads_torchvision_layout_and_sums_rgb(tmp_path):
    state = fake_torchvision_state()
    torch.save(state, tmp_path / "r18.pth")
    model = build_model("resnet18", 1)
    report = load_torchvision_resnet(encoder_of(model), tmp_path / "r18.pth")
    assert "fc.weight" in report["skipped"] and "conv1.weight" in report["loaded"]
    loaded = encoder_of(model).state_dict()
    assert torch.allclose(loaded["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(loaded["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])


class _Touch:
    """Unpickling this calls os.system: what a hostile weights file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_bad_weight_files(tmp_path):
    encoder = ResNetEncoder(18)
    with pytest.raises(ConfigError, match="weights file not found"):
        load_torchvision_resnet(encoder, tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not a weights file"):
        load_torchvision_resnet(encoder, tmp_path / "junk.pth")
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": _Touch(marker)}, tmp_path / "hostile.pth")
    with pytest.raises(ConfigError) as caught:
        load_torchvision_resnet(encoder, tmp_path / "hostile.pth")
    assert not marker.exists()  # refused by weights_only, never unpickled
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'hostile.pth'}: not a weights file") and "posix.system" in message
    assert "\n" not in message
    torch.save(fake_torchvision_state(34), tmp_path / "r34.pth")
    with pytest.raises(ConfigError, match="ResNet-18"):
        load_torchvision_resnet(encoder, tmp_path / "r34.pth")
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="no parameter"):
        load_torchvision_resnet(encoder, tmp_path / "other.pth")


def test_classifier_pooling_sees_a_small_defect():
    from steelinspect.models.pooling import AvgMaxPool

    features = torch.zeros(1, 3, 32, 64)
    spot = features.clone()
    spot[0, 1, 5, 7] = 4.0  # one strong activation in a large clean map
    pooled, pooled_spot = AvgMaxPool()(features), AvgMaxPool()(spot)
    assert pooled.shape == (1, 6)
    assert pooled_spot[0, 4] == 4.0  # the max keeps it whole ...
    assert pooled_spot[0, 1] < 0.01  # ... where the average all but loses it
