"""Test-only: make one rank of a sharded prediction (infer/shard.py) fail at a known image, so the failure tests
never race it.

STEELINSPECT_TEST_FAIL_RANK=R          rank R raises on the second image of its share (its first, if it has one)
STEELINSPECT_TEST_FAIL_RANK=R:N        rank R raises on image N (0-based) of its share
STEELINSPECT_TEST_FAIL_RANK=R:N:die    rank R dies there instead (SIGKILL: no handler, no clean-up runs)
Unset (always, outside the tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

from steelinspect.errors import ConfigError

ENV = "STEELINSPECT_TEST_FAIL_RANK"


def before_image(rank: int, position: int, share_size: int) -> None:
    """Called by each rank before it writes the result of image `position` (0-based) of its share."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    fields = spec.split(":")
    if not 1 <= len(fields) <= 3 or not all(f.isdigit() for f in fields[:2]) or fields[2:] not in ([], ["die"]):
        raise ConfigError(f"{ENV}={spec!r}: expected R, R:N or R:N:die")
    at = int(fields[1]) if len(fields) > 1 else min(1, share_size - 1)
    if rank != int(fields[0]) or position != at:
        return
    if fields[2:] == ["die"]:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"{ENV}: rank {rank} fails here, as the test asked")
