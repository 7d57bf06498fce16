"""Shared helpers for the benchmarks: a synthetic dataset on demand and a timer."""

from __future__ import annotations

import platform
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "steelinspect-bench"


def cpu_model() -> str:
    """The CPU's model name (every benchmark prints it: the machines change between sessions)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU features that decide the int8 / bf16 paths (AVX2, AVX-512, VNNI, BF16, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"))


def synthetic(images: int, seed: int = 0) -> Path:
    """A synthetic dataset of `images` images, generated once and reused between benchmark runs of the same
    generator: the folder is named after a hash of the generator's source, so a changed generator never trains
    on an older one's cached images."""
    import hashlib

    from steelinspect.data import synth, synth_draw
    from steelinspect.data.synth import generate

    source = b"".join(Path(module.__file__).read_bytes() for module in (synth, synth_draw))
    out = CACHE / f"synth-{images}-{seed}-{hashlib.blake2b(source, digest_size=4).hexdigest()}"
    if not (out / "train.csv").is_file():
        # Benchmarks started side by side may want the same set: one generates it, the others wait for it.
        import fcntl

        CACHE.mkdir(parents=True, exist_ok=True)
        with open(out.with_name(out.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / "train.csv").is_file():
                generate(out, images=images, seed=seed)
    return out


@contextmanager
def timer():
    box = {}
    start = time.perf_counter()
    yield box
    box["seconds"] = time.perf_counter() - start


def train_step_rate(model, x, y, loss_fn, batches: int) -> float:
    """Images/s of `batches` optimiser steps (forward, loss, backward, Adam) on one in-memory batch, after a
    warm-up step (allocator, kernels)."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    _warm, seconds = timed_steps(step, batches, x.device)
    return len(x) * batches / seconds


def timed_steps(step, batches: int, device) -> tuple[float, float]:
    """(seconds of one warm-up call of `step`, seconds of `batches` more), synchronised on CUDA so the GPU's
    queued work is counted."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with timer() as warm:
        step()
        sync()
    with timer() as t:
        for _ in range(batches):
            step()
        sync()
    return warm["seconds"], t["seconds"]
