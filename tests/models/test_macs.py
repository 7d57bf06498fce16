"""The MAC counter against counts done by hand."""

from torch import nn

from steelinspect.models.macs import count_macs


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # 8x8 out: 4*8*8 outputs * 1*3*3 = 2304
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False),  # 4x4 out: 8*4*4 * 4*3*3 = 4608
        nn.Conv2d(8, 8, 3, padding=1, groups=4),  # 4x4 out: 8*4*4 * (8/4)*3*3 = 2304
        nn.ConvTranspose2d(8, 2, 2, stride=2),  # 8*4*4 inputs * 2*2*2 = 1024 (out 2x8x8)
        nn.Flatten(),
        nn.Linear(2 * 8 * 8, 10),  # 10 outputs * 128 = 1280
    )


def test_hand_count_of_a_tiny_conv_net():
    count = count_macs(tiny_net(), (1, 1, 8, 8))
    assert count.by_layer == {"0": 2304, "2": 4608, "3": 2304, "4": 1024, "6": 1280}
    assert count.total == 2304 + 4608 + 2304 + 1024 + 1280


def test_batch_scales_the_count_and_the_model_is_left_as_it_was():
    net = tiny_net().train()
    one = count_macs(net, (1, 1, 8, 8)).total
    assert count_macs(net, (3, 1, 8, 8)).total == 3 * one
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())


def test_a_layer_called_twice_counts_twice():
    conv = nn.Conv2d(2, 2, 1)
    net = nn.Sequential(conv, conv)
    assert count_macs(net, (1, 2, 5, 5)).total == 2 * (2 * 5 * 5 * 2)
