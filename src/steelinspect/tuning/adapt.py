"""`steelinspect adapt RUN --images FRAMES --out NEW_RUN`: a run's BatchNorm statistics re-estimated on unlabelled
frames from the plant's own camera (AdaBN: Li et al., 2016, "Revisiting Batch Normalization For Practical Domain
Adaptation").

A model trained on synthetic steel meets real steel whose features are spread differently, and its thresholds,
tuned on synthetic validation images, then sit in the wrong place: step 1 trained on the synthetic default calls
most real clean steel defective. Each BatchNorm layer normalises its input with the mean and variance it saw in
training; measuring them again on the target frames puts the features back where the layers after it expect them.
No label is needed and no weight is trained: the weights, thresholds, post-processing and splits stay the run's.

NEW_RUN is a copy of RUN (splits.json, metrics.json, history.json as they were: its metrics are still the ones
measured before adapting; config.json with NEW_RUN as its folder) with
  model.pt    the new statistics (a new weights_id, so an ONNX export of RUN is never taken for NEW_RUN's)
  adapt.json  the run it came from, the frames (folder, how many used, which were skipped and why)
An ensemble (a --folds parent or an `ensemble` folder) is adapted member by member on the same frames into a
NEW_RUN that holds the adapted members, with the ensemble's own thresholds. The frames are a sample of what the
model meets in use, the camera's output as it comes: measured on the real sample, the share of defects among them
moved step 1's result less than adapting at all did (README, "Without labels").
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from steelinspect.data.images import list_images
from steelinspect.device import resolve_device
from steelinspect.errors import ConfigError, Problem, RunError
from steelinspect.infer.loader import iter_batches
from steelinspect.io import atomic_dir, read_json, write_json
from steelinspect.runs.ensemble import is_parent, read_ensemble, write_ensemble
from steelinspect.runs.files import (ADAPT_FILE, CONFIG_FILE, ENSEMBLE_FILE, FOLD_PREFIX, HISTORY_FILE, METRICS_FILE,
                                     MODEL_FILE, SPLITS_FILE)
from steelinspect.runs.store import load_run, read_model_file, weights_id

MIN_FRAMES = 16  # fewer frames give statistics noisier than the shift they correct
COPIED = (SPLITS_FILE, METRICS_FILE, HISTORY_FILE)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def reestimate_batchnorm(model: nn.Module, batches) -> int:
    """Replace every BatchNorm layer's running mean and variance by their averages over `batches` (float32 tensors
    the model takes, already on its device): only those layers run in training mode, under no_grad, so nothing else
    changes (dropout stays off, no weight moves). Returns how many images were seen."""
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: every batch weighs the same
        layer.train()
    seen = 0
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
                seen += int(x.shape[0])
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.eval()
    return seen


def adapt_run(run_dir: str | Path, images: str | Path | list[str | Path], out: str | Path, *, max_frames: int = 1000,
              seed: int = 0, batch_size: int = 16, device: str = "auto", workers: int = 2,
              say: Callable[[str], None] = lambda _msg: None,
              on_image: Callable[[int], None] | None = None) -> Path:
    """Write NEW_RUN at `out`: RUN with its BatchNorm statistics measured on the frames of `images` (a folder or
    a list of files; at most `max_frames`, a seeded sample of them when there are more). `on_image(n)` after each
    frame read (a progress bar). Returns `out`."""
    run_dir = Path(run_dir)
    out = Path(os.path.abspath(out))
    if out == Path(os.path.abspath(run_dir)):
        raise ConfigError("--out is the run itself; choose a new folder (RUN is never overwritten)", out)
    if max_frames < MIN_FRAMES:
        raise ConfigError(f"--max-frames {max_frames}: at least {MIN_FRAMES} frames are needed")
    options = dict(max_frames=max_frames, seed=seed, batch_size=batch_size, device=device, workers=workers, say=say)
    if is_parent(run_dir):
        return _adapt_ensemble(run_dir, images, out, on_image, **options)
    dev = resolve_device(device)
    run = load_run(run_dir, dev)
    layers = len(batchnorm_layers(run.model))
    if not layers:
        raise RunError(f"the {run.arch} model has no BatchNorm layer: nothing to adapt", run_dir)
    paths = list_images(images)
    if len(paths) > max_frames:
        chosen = np.random.default_rng(seed).choice(len(paths), size=max_frames, replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    skipped: list[Problem] = []

    def skip(problem: Problem) -> None:
        skipped.append(problem)
        say(f"skipped {problem}")

    say(f"measuring {layers} BatchNorm layers of {run_dir} on {len(paths)} frames")
    batches = (torch.from_numpy(batch.input(run.preprocess)).to(dev)
               for batch in iter_batches(paths, [run.preprocess], batch_size, workers, on_problem=skip,
                                         on_image=on_image))
    seen = reestimate_batchnorm(run.model, batches)
    where = [str(p) for p in images] if isinstance(images, (list, tuple)) else str(images)
    if seen < MIN_FRAMES:
        raise ConfigError(f"{seen} readable frames ({len(skipped)} skipped): at least {MIN_FRAMES} are needed to "
                          f"measure the statistics", None if isinstance(where, list) else Path(where))
    blob = read_model_file(run_dir)
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    blob["state_dict"], blob["weights_id"] = state, weights_id(state)
    for stale in ("onnx", "int8"):  # exports of the old statistics
        blob.pop(stale, None)
    config = replace(run.config, out=out).to_dict()
    blob["config"] = config
    with atomic_dir(out, what="adapted run") as tmp:
        for name in COPIED:
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, tmp / name)
        write_json(tmp / CONFIG_FILE, config)
        torch.save(blob, tmp / MODEL_FILE)
        write_json(tmp / ADAPT_FILE, {
            "from": str(Path(os.path.abspath(run_dir))), "from_weights_id": run.weights_id,
            "weights_id": blob["weights_id"], "frames": where, "frames_used": seen,
            "max_frames": max_frames, "seed": seed, "layers": layers,
            "skipped": [{"file": p.file, "problem": p.problem} for p in skipped]})
    say(f"adapted run written to {out} ({seen} frames, {len(skipped)} skipped)")
    if run.head == "segment":  # measured on the real sample: see the README's "Without labels"
        say("a segmenter: score the adapted run on reviewed frames (`evaluate`) before using it; adapting one "
            "lost most of the real class 4 it had found")
    return out


def _adapt_ensemble(parent: Path, images, out: Path, on_image, **options) -> Path:
    """An ensemble (a --folds parent or an `ensemble` folder) adapted member by member on the same frames, into one
    new folder that holds the adapted members: its tuned thresholds are kept, like a run's. (Combining adapted runs
    with `steelinspect ensemble` instead would tune the thresholds on synthetic validation images seen through real
    statistics.)"""
    data = read_ensemble(parent)
    members = [Path(m) for m in data["members"]]
    folds = all(m.parent == Path(".") and m.name.startswith(FOLD_PREFIX) for m in members)
    names = [m.name if folds else f"member_{i + 1}" for i, m in enumerate(members)]
    with atomic_dir(out, what="adapted ensemble") as tmp:
        for entry in parent.iterdir():
            if entry.is_file() and entry.name not in (ENSEMBLE_FILE, CONFIG_FILE):
                shutil.copyfile(entry, tmp / entry.name)
        for i, (member, name) in enumerate(zip(members, names)):
            options["say"](f"member {i + 1} of {len(members)}: {parent / member}")
            adapt_run(parent / member, images, tmp / name, on_image=on_image, **options)
        write_ensemble(tmp, {**{k: v for k, v in data.items() if k != "format"}, "members": names})
        write_json(tmp / CONFIG_FILE, {**read_json(parent / CONFIG_FILE), "out": str(out)})
        write_json(tmp / ADAPT_FILE, {"from": str(Path(os.path.abspath(parent))), "members": names,
                                      **{k: v for k, v in read_json(tmp / names[0] / ADAPT_FILE).items()
                                         if k in ("frames", "frames_used", "max_frames", "seed", "skipped")}})
    return out
