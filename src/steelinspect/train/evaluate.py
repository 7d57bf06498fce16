"""`steelinspect evaluate`: recompute a run's metrics on a labelled dataset.

On the run's own dataset the stored splits are scored again ({"train", "val", "test", "thresholds"}, like
metrics.json); on any other dataset every image the task applies to is scored as one split, "all", except the
images the run (any member of an ensemble) trained on, matched by name ("trained_left_out" counts them), so a
moved or copied training set is scored on its validation and test images only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from steelinspect.data.images import opencv_single_threaded
from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.data.splits import frames_from_ids, scored_images
from steelinspect.device import resolve_device
from steelinspect.io import read_json
from steelinspect.runs.files import SPLITS_FILE
from steelinspect.runs.ensemble import Ensemble, load_model
from steelinspect.train import distributed
from steelinspect.train.loop import evaluate_loader
from steelinspect.train.tasks import make_task


def evaluate(run_dir: str | Path | list, data: str | Path, device: str = "auto", batch_size: int = 16, workers: int = 2) -> dict:
    data = Path(data)
    dev = resolve_device(device)
    run = load_model(run_dir, dev)  # a run, a fold parent, or several run directories (an ensemble)
    run_dir = run.run_dir
    layout = data_dir(data)
    master = build_master(data)
    task = make_task(run.head)
    if hasattr(task, "configure"):  # the run's loss (and crop widths), so the loss reported is the trained one
        task.configure(run.config)
    task.set_loss_weights(run.loss_weights)
    # Run directories given together have no splits of their own: scored on every image, like another dataset.
    together = isinstance(run, Ensemble) and run.parent is None
    same_data = run.trained_on(data) and (run_dir / SPLITS_FILE).is_file() and not together
    left_out = 0
    if same_data:
        frames = frames_from_ids(master, read_json(run_dir / SPLITS_FILE))
    else:
        frame = scored_images(master, run.head)
        unseen = frame[~frame.ImageId.isin(run.trained_ids())]
        frames, left_out = {"all": unseen}, len(frame) - len(unseen)
    params = run.thresholds if run.postprocess is None else run.postprocess
    out: dict = {"trained_left_out": left_out} if left_out else {}
    for name, frame in frames.items():
        if frame.empty:
            out[name] = None
            continue
        dataset = task.dataset(layout.images, frame, run.preprocess, False, 0)
        opencv_single_threaded()
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
        with torch.inference_mode():
            part = evaluate_loader(run.model, task, loader, dev, distributed.Dist())
        out[name] = task.metrics(part, params)
    out.update(task.param_fields(params))
    return out
