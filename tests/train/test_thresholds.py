"""Step 2's thresholds: --rare-threshold break-even for a class with a handful of validation images; F1-optimal
to rank epochs."""

from __future__ import annotations

import numpy as np
import torch

from steelinspect.metrics.classification import best_f1_threshold, break_even_threshold
from steelinspect.train.tasks import Collector, make_task


def test_the_run_breaks_even_on_a_rare_class_but_ranks_its_epochs_by_f1():
    rng = np.random.default_rng(1)
    y = np.zeros((90, 4), np.float32)
    y[:40, 0], y[[3, 50, 70], 1], y[30:, 2], y[:12, 3] = 1, 1, 1, 1  # class 2 on three images
    probs = np.clip(0.6 * y + rng.uniform(0.0, 0.5, y.shape), 0, 1).astype(np.float32)
    probs[3, 1] = 0.05  # one of the three ranked low
    collector = Collector()
    collector.add(torch.from_numpy(probs), torch.from_numpy(y), torch.arange(90), 0.1)
    task = make_task("multilabel")
    task.loss_name = "focal"
    assert task.tune(collector) == task.epoch_params(collector)  # the default, f1: F1-optimal both ways
    task.rare_threshold = "break-even"
    final, ranking = task.tune(collector), task.epoch_params(collector)
    assert final[1] == break_even_threshold(y[:, 1], probs[:, 1]) != ranking[1]
    assert ranking[1] == best_f1_threshold(y[:, 1], probs[:, 1])
    assert (probs[:, 1] >= final[1]).sum() == 3  # calls as many as hold it
    # Classes with five or more validation images: F1-optimal both ways.
    assert [final[i] for i in (0, 2, 3)] == [ranking[i] for i in (0, 2, 3)]
    task.loss_name = "bce"
    assert task.epoch_params(collector) == [0.5] * 4  # BCE keeps 0.5 to rank epochs, as before
