"""Segmenter probabilities: flip TTA and resizing back to 256x1600."""

import numpy as np
import torch
from torch import nn

from steelinspect.postprocess.segmenter import segment_probs, to_full_size, torch_logits


class Ramp(nn.Module):
    """Logit = pixel value + a left-to-right ramp: not flip-invariant, so TTA changes the result."""

    def forward(self, x):
        ramp = torch.linspace(-2, 2, x.shape[-1]).expand_as(x)
        return (x + ramp).repeat(1, 4, 1, 1)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_tta_averages_over_flips():
    x = np.random.default_rng(0).normal(size=(2, 1, 32, 64)).astype(np.float32)
    logits = torch_logits(Ramp())
    plain = sigmoid(logits(x))
    h = np.flip(sigmoid(logits(np.ascontiguousarray(np.flip(x, -1)))), -1)
    v = np.flip(sigmoid(logits(np.ascontiguousarray(np.flip(x, -2)))), -2)
    got = segment_probs(logits, x, tta=True)
    assert got.shape == (2, 4, 32, 64)
    assert np.allclose(got, (plain + h + v) / 3, atol=1e-6)
    assert not np.allclose(got, plain, atol=1e-3)
    assert np.allclose(segment_probs(logits, x, tta=False), plain, atol=1e-6)


def test_probs_come_back_at_full_size():
    probs = np.zeros((4, 128, 800), np.float32)
    probs[:, :, 400:] = 1.0
    full = to_full_size(probs)
    assert full.shape == (4, 256, 1600) and full.dtype == np.float32
    assert full[:, :, :790].max() == 0 and full[:, :, 810:].min() == 1
    same = np.zeros((4, 256, 1600), np.float32)
    assert to_full_size(same) is same


def test_large_batches_run_in_chunks_with_the_same_result():
    x = np.random.default_rng(1).normal(size=(7, 1, 32, 64)).astype(np.float32)
    seen = []
    inner = torch_logits(Ramp())

    def logits(batch):
        seen.append(len(batch))
        return inner(batch)

    whole = segment_probs(inner, x, tta=True, chunk=100)
    chunked = segment_probs(logits, x, tta=True, chunk=3)
    assert seen == [3] * 3 + [3] * 3 + [1] * 3  # identity, horizontal, vertical flip per chunk
    assert np.allclose(chunked, whole, atol=1e-6)
