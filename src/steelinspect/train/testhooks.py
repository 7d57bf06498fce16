"""Test-only: interrupt a training run at a known point, so tests of Ctrl-C and --resume never race the run.

STEELINSPECT_TEST_INTERRUPT=N       after epoch N is checkpointed, the process sends itself SIGINT (Ctrl-C's path).
STEELINSPECT_TEST_INTERRUPT=N:wait  after epoch N is checkpointed, the run waits (at most 5 minutes) for a SIGINT
                                    from outside; the signal then lands while the run waits, never after it ends.
Unset (always, outside the tests) it does nothing.
"""

from __future__ import annotations

import os
import signal
import time

from steelinspect.errors import ConfigError

ENV = "STEELINSPECT_TEST_INTERRUPT"
WAIT_S = 300.0


def after_epoch(epoch: int) -> None:
    """Called by the training loop once epoch `epoch` (1-based) is checkpointed."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    after, _, mode = spec.partition(":")
    if not after.isdigit() or mode not in ("", "wait"):
        raise ConfigError(f"{ENV}={spec!r}: expected N or N:wait")
    if epoch != int(after):
        return
    if mode == "":
        signal.raise_signal(signal.SIGINT)  # Python's handler raises KeyboardInterrupt here, as for Ctrl-C
        return
    time.sleep(WAIT_S)  # a SIGINT ends the sleep with KeyboardInterrupt
    raise ConfigError(f"{ENV}={spec!r}: no SIGINT came within {WAIT_S:.0f} s of epoch {epoch}")
