"""--mask-aux's probe: the classifiers' stride-16 feature map, and the 1x1 convolution that reads the masks off it."""

from __future__ import annotations

import pytest
import torch

from steelinspect.models.factory import build_model
from steelinspect.models.mask_probe import MaskProbe
from steelinspect.train.losses import mask_loss


@pytest.mark.parametrize("arch", ["vgg", "resnet18", "resnet50"])
def test_the_map_is_at_stride_16_and_the_logits_are_the_models(arch):
    torch.manual_seed(0)
    model = build_model(arch, 4).eval()
    x = torch.randn(2, 1, 64, 224)
    with torch.no_grad():
        logits, features = model.forward_with_map(x)
        assert torch.allclose(logits, model(x), atol=1e-6)
        assert features.shape == (2, model.map_channels, 64 // 16, 224 // 16)
        logits_again, cells = MaskProbe(model, 4).eval()(x)
    assert torch.equal(logits_again, logits) and cells.shape == (2, 4, 4, 14)


def test_the_probe_trains_the_features_towards_the_masks():
    """A few steps on one image whose mask is one column of cells: the probe learns to mark that column."""
    torch.manual_seed(0)
    probe = MaskProbe(build_model("vgg", 1), 1)
    x = torch.randn(4, 1, 64, 128)
    x[..., 48:64] += 3.0  # something to see where the mask is
    grid = torch.zeros(4, 1, 4, 8)
    grid[..., 3] = 1.0
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        _, cells = probe(x)
        loss = mask_loss(cells, grid)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe.eval()
    with torch.no_grad():
        marked = torch.sigmoid(probe(x)[1])
    assert loss.item() < first / 4
    assert marked[..., 3].min() > marked[..., [0, 1, 5, 6, 7]].max()


def test_mismatched_targets_are_refused():
    with pytest.raises(ValueError, match=r"cell logits \(2, 4, 4, 8\) against mask targets \(2, 4, 8, 26\)"):
        mask_loss(torch.zeros(2, 4, 4, 8), torch.zeros(2, 4, 8, 26))
