"""Shared fixtures: the real Severstal sample (skipped when absent) and small synthetic datasets."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import pytest

from tests.log_backends import log_url, postgres_server  # noqa: F401 (fixtures for tests/inspect_log, tests/serve)

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLE = Path(os.environ.get("STEELINSPECT_REAL_SAMPLE", REPO.parent / "shared" / "severstal-sample"))

# One thread per process: the suite's models are small, and on a busy machine (or two suites side by side) two
# OpenMP threads wait on each other; measured here under load: a tiny training run 3.4 s CPU with 1 thread,
# 21 s with 2. Subprocesses inherit it. Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _ctrl_c_as_a_fresh_process_has_it(request):
    """Every test starts with Python's own SIGINT handler (Ctrl-C raises KeyboardInterrupt; a subprocess started
    here gets SIGINT's default action). In one full run under pytest-xdist, four Ctrl-C tests found SIGINT
    ignored in their worker, left so by an earlier test in that process (each passes alone; not yet traced):
    a test that leaves it changed is named in a warning instead of breaking the next one."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    left = signal.getsignal(signal.SIGINT)
    if left is not signal.default_int_handler:
        warnings.warn(f"{request.node.nodeid} left the SIGINT handler as {left!r}")
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """../shared/severstal-sample: 30 real images, 40 real masks (see its README)."""
    if not (REAL_SAMPLE / "train.csv").is_file():
        pytest.skip(f"real Severstal sample not found at {REAL_SAMPLE} (set STEELINSPECT_REAL_SAMPLE)")
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset in the newer label format (64 images, seed 0). Do not modify it."""
    from steelinspect.data.synth import generate

    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, images=64, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_runs(synth_dir, tmp_path_factory) -> dict[str, Path]:
    """A binary and a multi-label run trained for one epoch on `synth_dir` at 64x128 (shared, do not modify)."""
    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.loop import train

    root = tmp_path_factory.mktemp("runs")
    small = dict(epochs=1, batch_size=8, image_size=(64, 128), workers=0, arch="vgg", seed=0)
    return {
        task: train(TrainConfig(task=task, data=synth_dir, out=root / task, **small), progress=False)
        for task in ("binary", "multiclass")
    }


@pytest.fixture(scope="session")
def tiny_seg_data(tmp_path_factory) -> Path:
    """12 synthetic images (seed 1) for segmentation tests: few images keep a UNet epoch to seconds."""
    from steelinspect.data.synth import generate

    out = tmp_path_factory.mktemp("segsynth") / "data"
    generate(out, images=12, seed=1, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_segment_run(tiny_seg_data, tmp_path_factory) -> Path:
    """A UNet-ResNet18 segment run: 1 epoch on 64x256 crops of 64x384 images (shared, do not modify)."""
    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.loop import train

    out = tmp_path_factory.mktemp("segrun") / "segment"
    config = TrainConfig(task="segment", data=tiny_seg_data, out=out, arch="unet_resnet18", epochs=1, batch_size=4,
                         image_size=(64, 384), crop_width=(256, 256), workers=0, seed=0, device="cpu")
    return train(config, progress=False)


@pytest.fixture(scope="session")
def forced_runs(tiny_runs, tiny_segment_run, tmp_path_factory) -> dict[str, Path]:
    """Copies of the tiny runs whose decisions are forced, so pictures of masks can be checked for certain:
    step 1 calls every image defective, step 2 says class 3, and the segmenter marks the whole image as class 3
    (threshold 0: every sigmoid is above it; thresholds 1 for the other classes: none is)."""
    import shutil

    from steelinspect.runs.store import update_model_params

    root = tmp_path_factory.mktemp("forced")
    runs = {name: Path(shutil.copytree(src, root / name)) for name, src in
            {**tiny_runs, "segment": tiny_segment_run}.items()}
    update_model_params(runs["binary"], thresholds=[0.0])
    update_model_params(runs["multiclass"], thresholds=[1.0, 1.0, 0.0, 1.0])  # the multi-label head
    update_model_params(runs["segment"], postprocess={"thresholds": [1.0, 1.0, 0.0, 1.0], "min_areas": [0, 0, 0, 0]})
    return runs
