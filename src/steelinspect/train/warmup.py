"""--warmup E: the learning rate rises linearly to its scheduled value over the first E epochs' optimiser steps.

Adam's first updates use second-moment estimates from a few batches, and a full-size first step can push a head
onto the plateau where a class is called absent everywhere (step 2's run seed 1 on the CPU stays there for 16
epochs; docs/rare-classes.md, "`--warmup E`"). A short linear ramp is the usual remedy (Goyal et al. 2017,
"Accurate, large minibatch SGD"). It multiplies the per-epoch cosine schedule and hands every epoch back at the
scheduled rate, so the cosine (recursive in torch: it reads the rate it left) steps on exactly as it does without
a warm-up, and a run without --warmup trains bit for bit as before.
"""

from __future__ import annotations

import math

import torch


class Warmup:
    """Step k (1-based) of the first `steps` optimiser steps runs at k / steps of the scheduled rate."""

    def __init__(self, steps: int, done: int = 0) -> None:
        self.steps, self.done = steps, min(done, steps)

    @classmethod
    def of(cls, epochs: float, steps_per_epoch: int, start_epoch: int = 0) -> "Warmup":
        """The ramp for `epochs` epochs of `steps_per_epoch` steps; a run resumed at `start_epoch` (0-based) is
        as far along it as an uninterrupted run would be (the ramp is a function of the step, nothing is saved)."""
        steps = max(1, math.ceil(epochs * steps_per_epoch)) if epochs > 0 else 0
        return cls(steps, start_epoch * steps_per_epoch)

    @property
    def active(self) -> bool:
        return self.done < self.steps

    def before_step(self, optimizer: torch.optim.Optimizer, scheduled: list[float]) -> None:
        """Set each parameter group's rate for the coming step (`scheduled`: the groups' rates this epoch)."""
        if not self.active:
            return
        self.done += 1
        for group, lr in zip(optimizer.param_groups, scheduled):
            group["lr"] = lr * self.done / self.steps

    @staticmethod
    def restore(optimizer: torch.optim.Optimizer, scheduled: list[float]) -> None:
        """The epoch's scheduled rates back, before the scheduler steps from them."""
        for group, lr in zip(optimizer.param_groups, scheduled):
            group["lr"] = lr
