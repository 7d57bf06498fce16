"""The training loop: one loop for every task, read top to bottom in `_train`.

data -> splits -> datasets -> model -> for each epoch: train, validate, keep the best, checkpoint -> tune the
decision parameters on validation -> metrics for train/val/test -> run directory. Each step is one helper below
`_train`, in the order it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from steelinspect.data.check import preflight
from steelinspect.data.dataset import EpochSampler
from steelinspect.data.images import opencv_single_threaded
from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.data.folds import make_fold_splits
from steelinspect.data.sampling import sample_weights
from steelinspect.data.splits import frames_from_ids, make_splits, split_ids, split_warnings
from steelinspect.data.transforms import Preprocess
from steelinspect.device import resolve_device
from steelinspect.errors import ConfigError, RunError
from steelinspect.io import read_json, write_json
from steelinspect.metrics.classification import at_chance_warning, classes_at_chance
from steelinspect.models.factory import build_model, encoder_of
from steelinspect.models.frame_norm import plain_statistics
from steelinspect.models.mask_probe import MaskProbe
from steelinspect.models.weights import load_torchvision_resnet
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.files import (CHECKPOINT_FILE, CONFIG_FILE, CURVES_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE,
                                     SPLITS_FILE)
from steelinspect.runs.store import (init_from_run, load_checkpoint, read_model_file, save_checkpoint, save_model,
                                     update_model_params)
from steelinspect.train import distributed, freeze, speed
from steelinspect.train.pseudo_data import attach_pseudo, train_sampler as make_train_sampler
from steelinspect.train.rng_state import get_rng_state, plain, set_rng_state
from steelinspect.train import testhooks
from steelinspect.train.losses import mask_loss
from steelinspect.train.tasks import Collector, make_task
from steelinspect.train.warmup import Warmup


def _prepare_run_dir(config: TrainConfig, is_main: bool) -> dict[str, list[str]] | None:
    """Create or check the run directory; the stored splits when resuming."""
    run_dir = Path(config.out)
    if config.resume:
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise RunError(f"nothing to resume: no {CHECKPOINT_FILE}", run_dir)
        config.check_resumes(TrainConfig.read(run_dir / CONFIG_FILE), run_dir)
        return read_json(run_dir / SPLITS_FILE)
    if (run_dir / MODEL_FILE).exists() or (run_dir / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume to continue it or choose another --out")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    return None


def _loader(dataset, batch_size: int, sampler, workers: int) -> DataLoader:
    opencv_single_threaded()  # the loader's workers (or this process) are the decoding parallelism
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      persistent_workers=False, pin_memory=False, drop_last=False)


class _Shard(torch.utils.data.Sampler[int]):
    """Evaluation: rank r takes every world-th image (no padding, so nothing is counted twice)."""

    def __init__(self, size: int, rank: int, world: int):
        self.items = list(range(rank, size, world))

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@torch.no_grad()
def evaluate_loader(model, task, loader, device, d: distributed.Dist, nhwc: bool = False) -> Collector:
    """Run a model over a loader (in fp32) and collect the whole split (gathered across processes)."""
    model.eval()
    collector = task.new_collector()
    for x, y, idx in loader:
        x, y = speed.to_device(x, device, nhwc), y.to(device)
        logits = model(x)
        collector.add(task.probabilities(logits), y, idx, float(task.loss(logits, y)))
    return _gathered(collector, d)


def _gathered(collector: Collector, d: distributed.Dist) -> Collector:
    """The whole split's collector from every process's part (in dataset order, each image once)."""
    return type(collector).merge(distributed.gather(d, collector))


def train(config: TrainConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Train one model as configured and return its run directory (with --folds K: K runs in one parent,
    train/folds.py)."""
    config.validate()
    if config.folds > 1 and not config.fold:
        from steelinspect.train.folds import train_folds

        return train_folds(config, progress, log)
    device = resolve_device(config.device)
    speed.check_precision(config.precision, device)
    d = distributed.setup(device)
    if device.type == "cuda" and d.enabled:
        device = torch.device("cuda", d.local_rank)
    say = (log or (lambda _msg: None)) if d.main else (lambda _msg: None)
    try:
        return _train(config, device, d, progress and d.main, say)
    finally:
        distributed.cleanup(d)


@dataclass
class _Fit:
    """The model and what trains it, with the epochs so far: what checkpoint.pt saves and --resume restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: speed.Precision
    start: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = -np.inf
    best_loss: float = np.inf  # the best epoch's validation loss: breaks ties of the score (see _score_epoch)
    warmup: Warmup = field(default_factory=lambda: Warmup(0))  # --warmup's ramp (set once the loader is built)
    probe: MaskProbe | None = None  # --mask-aux: the model with its mask probe, what the training steps run

    def checkpoint(self, epoch: int) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": epoch, "history": self.history,
                 "best": self.best, "best_loss": self.best_loss, "rng": get_rng_state(),
                 "scaler": self.precision.state_dict()}
        if self.probe is not None:
            state["probe"] = self.probe.cells.state_dict()
        return state

    def resume(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.probe is not None:
            self.probe.cells.load_state_dict(state["probe"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start, self.history, self.best = state["epoch"] + 1, state["history"], state["best"]
        self.best_loss = state.get("best_loss", np.inf)  # absent in checkpoints from before the tie-break
        set_rng_state(state["rng"])
        self.precision.load_state_dict(state.get("scaler"))  # absent in checkpoints from before --precision


def _train(config: TrainConfig, device: torch.device, d: distributed.Dist, progress: bool, say) -> Path:
    run_dir = Path(config.out)
    images = data_dir(config.data).images
    stored = _prepare_run_dir(config, d.main)
    distributed.barrier(d)
    task = make_task(config.head)
    if hasattr(task, "configure"):  # task-specific settings (segment: crop widths)
        task.configure(config)
    splits = _splits(config, stored, d.main)
    preprocess = Preprocess(*config.image_size)
    datasets = {name: task.dataset(images, frame, preprocess, name == "train" and config.augment, config.seed)
                for name, frame in splits.items()}
    attach_pseudo(config, task, splits, datasets, preprocess, say)  # --pseudo: mixed into the training batches
    preflight(datasets.values())  # every image's header now: a bad file is named before the first epoch
    weights = sample_weights(config.sampler, datasets["train"].targets)
    task.setup_loss(datasets["train"].targets, weights)
    prior = task.output_prior(datasets["train"].targets, weights) if config.head_prior else None
    say(f"{config.head}: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} images; {config.arch} at "
        f"{config.image_size[0]}x{config.image_size[1]} on {device}, {config.sampler} sampler, {config.loss} loss"
        + (f", {d.world} processes" if d.enabled else "")
        + "".join(f", {flag}" for flag, on in ((config.precision, config.precision != "fp32"),
                                               ("channels-last", config.channels_last), ("compiled", config.compile)) if on)
        + (f", {config.augment_preset} augmentation" if config.augment and config.augment_preset != "standard" else "")
        + (f", encoder frozen for {config.freeze_encoder_epochs} epoch(s)" if config.freeze_encoder_epochs else "")
        + (f", a defect pasted into {config.paste:.0%} of training images" if config.paste else "")
        + (f", learning rate warmed up over {config.warmup:g} epoch(s)" if config.warmup else "")
        + (f", mask loss at weight {config.mask_aux:g}" if config.mask_aux else "")
        + (f" over classes {', '.join(map(str, sorted(config.mask_classes)))}"
           if config.mask_aux and task.mask_channels else ""))
    warnings = split_warnings(splits, config.head, config.rare_threshold)
    for line in warnings:
        say(f"warning: {line}")
    fit = _build(config, task, splits, device, say, prior)
    if config.freeze_encoder_epochs and d.enabled:
        # DDP fixes which parameters it reduces when it wraps the model; a freeze that ends mid-run would change them.
        raise ConfigError("--freeze-encoder-epochs is not supported under torchrun yet: train on one process")
    trained = fit.probe if fit.probe is not None else fit.model
    net = DistributedDataParallel(trained) if d.enabled else trained
    if config.compile:
        net = speed.compiled(net)  # fit.model stays the plain module: its state_dict is what is saved
    train_sampler, train_loader, eval_loaders = _loaders(config, task, images, splits, datasets, preprocess, d)
    if config.resume:
        fit.resume(load_checkpoint(run_dir))
        say(f"resuming after epoch {fit.start} of {config.epochs}")
    fit.warmup = Warmup.of(config.warmup, len(train_loader), fit.start)

    for epoch in range(fit.start, config.epochs):
        t0 = time.perf_counter()
        train_sampler.set_epoch(epoch)
        datasets["train"].set_epoch(epoch)
        frozen = freeze.frozen_in(epoch, config.freeze_encoder_epochs)
        if config.freeze_encoder_epochs:
            freeze.set_frozen(fit.model, config.arch, frozen)
        # --frame-norm is how frames are decided, not how they are learnt or the best epoch chosen: the epoch and its
        # validation run on plain BatchNorm (a frozen encoder's, in eval mode, too).
        with plain_statistics(fit.model):
            collector = _fit_epoch(net, task, train_loader, fit, config, device, d, t0,
                                   f"epoch {epoch + 1}/{config.epochs}", progress, frozen)
            lr = fit.optimizer.param_groups[0]["lr"]
            fit.scheduler.step()
            record, score, improved = _score_epoch(fit, task, collector, eval_loaders["val"], device, d, epoch, lr,
                                                   t0, len(train_sampler) * d.world, config.channels_last)
        if d.main:
            if improved:
                save_model(run_dir, fit.model, config, config.head, task.num_outputs, preprocess, epoch=epoch + 1,
                           loss_weights=task.loss_weights(), **task.param_fields(task.default_params()))
            save_checkpoint(run_dir, plain(fit.checkpoint(epoch)))
            write_json(run_dir / HISTORY_FILE, fit.history)
        say(f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f}, val loss "
            f"{record['val_loss']:.4f}, val {task.score_key} {score:.4f}{' (best)' if improved else ''}, "
            f"{record['images_per_s']:.1f} img/s")
        testhooks.after_epoch(epoch + 1)  # test-only: does nothing unless STEELINSPECT_TEST_INTERRUPT is set
        distributed.barrier(d)

    _final(run_dir, fit, task, eval_loaders, device, d, say, config.channels_last, warnings)
    return run_dir


def _splits(config: TrainConfig, stored: dict[str, list[str]] | None, is_main: bool) -> dict[str, pd.DataFrame]:
    """The same splits on every process: fixed by the seed (and written with the config), or read back when
    resuming."""
    master = build_master(config.data)
    if stored is None and config.fold:  # one run of a --folds parent (train/folds.py)
        splits = make_fold_splits(master, config.head, config.protocol, config.per_class, config.seed, config.folds,
                                  config.fold, config.val_fraction, config.test_fraction)
    elif stored is None:
        splits = make_splits(master, config.head, config.protocol, config.per_class, config.seed,
                             config.val_fraction, config.test_fraction)
    if stored is None:
        if is_main:
            write_json(Path(config.out) / SPLITS_FILE, split_ids(splits))
            write_json(Path(config.out) / CONFIG_FILE, config.to_dict())
    else:
        splits = frames_from_ids(master, stored)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise ConfigError(f"too few images to train and validate ({sum(len(s) for s in splits.values())} selected)")
    return splits


def _build(config: TrainConfig, task, splits: dict[str, pd.DataFrame], device: torch.device, say,
           prior: np.ndarray | None = None) -> _Fit:
    """Model (initialisation fixed by the seed; --weights, --init, --head-prior's `prior`), optimiser and schedule."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = build_model(config.arch, task.num_outputs, tile_width=config.tile_width, frame_norm=config.frame_norm)
    if config.weights:
        encoder = encoder_of(model)
        if encoder is None:
            raise ConfigError(f"--weights needs a ResNet-based --arch; {config.arch} has no ResNet encoder")
        report = load_torchvision_resnet(encoder, config.weights)
        say(f"loaded {len(report['loaded'])} tensors from {config.weights} (the whole encoder)")
    if config.init:
        loaded = init_from_run(model, config.init, config.arch, held_out=[*splits["val"].ImageId, *splits["test"].ImageId])
        say(f"started from {config.init}: {loaded} of {len(model.state_dict())} tensors (the head is new)")
    if prior is not None:
        model.start_at_prior(prior)
        say("outputs start at their share of positive draws: " + ", ".join(f"{p:.3f}" for p in prior))
    # Built after the model, so the model's initialisation is the same with or without it.
    probe = MaskProbe(model, task.num_outputs) if config.mask_aux else None
    trained = model if probe is None else probe
    trained.to(device)
    if config.channels_last:
        speed.channels_last(trained)
    optimizer = torch.optim.Adam(trained.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr * 0.05)
    return _Fit(model, optimizer, scheduler, speed.Precision(config.precision, device), probe=probe)


def _loaders(config: TrainConfig, task, images: Path, splits: dict, datasets: dict, preprocess: Preprocess,
             d: distributed.Dist) -> tuple[EpochSampler, DataLoader, dict[str, DataLoader]]:
    """The training loader (its batch split across processes) and one evaluation loader per split."""
    if d.enabled and config.batch_size % d.world:
        raise ConfigError(f"--batch-size {config.batch_size} must divide by the {d.world} processes")
    per_rank = config.batch_size // d.world
    train_sampler = make_train_sampler(datasets["train"], config, d.rank, d.world)
    train_loader = _loader(datasets["train"], per_rank, train_sampler, config.workers)
    # Evaluation sees every split without augmentation (the training split too, for its final metrics; never the
    # pseudo-labelled images).
    eval_sets = {**datasets, "train": task.dataset(images, splits["train"], preprocess, False, config.seed)}
    eval_loaders = {name: _loader(ds, per_rank, _Shard(len(ds), d.rank, d.world), config.workers)
                    for name, ds in eval_sets.items()}
    return train_sampler, train_loader, eval_loaders


def _fit_epoch(net, task, loader: DataLoader, fit: _Fit, config: TrainConfig, device, d: distributed.Dist, t0: float,
               desc: str, progress: bool, frozen: bool = False) -> Collector:
    """One pass of the optimiser over the training loader (at --precision); what the model output on the way.
    `frozen`: the encoder does not train this epoch (--freeze-encoder-epochs)."""
    net.train()
    if frozen:
        freeze.hold_eval(fit.model, config.arch)
    collector = task.new_collector()
    scheduled = [group["lr"] for group in fit.optimizer.param_groups]  # this epoch's rates (the cosine's)
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch", dynamic_ncols=True)
    seen = 0
    for x, y, idx, *grid in bar:  # a fourth item with --mask-aux: the mask grids (data/mask_grid.py)
        x, y = speed.to_device(x, device, config.channels_last), y.to(device)
        with fit.precision.autocast():
            try:
                out = net(x)
            except Exception as exc:  # torch.compile compiles at the first batch: its failure as one line
                if config.compile and seen == 0 and not isinstance(exc, MemoryError):
                    raise speed.compile_error(exc) from None
                raise
        logits, cells = out if fit.probe is not None else (out, None)
        logits = logits.float()  # the loss and the collected outputs in fp32
        loss = task.loss(logits, y)
        loss_value = loss.item()  # the classifier's own loss, comparable with validation's
        if cells is not None:
            loss = loss + config.mask_aux * mask_loss(cells, grid[0].to(device), task.mask_channels)
        fit.warmup.before_step(fit.optimizer, scheduled)
        fit.precision.step(loss, fit.optimizer)
        collector.add(task.probabilities(logits.detach()), y, idx, loss_value)
        seen += len(x) * d.world
        bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
    fit.warmup.restore(fit.optimizer, scheduled)
    return collector


def _score_epoch(fit: _Fit, task, collector: Collector, val_loader: DataLoader, device, d: distributed.Dist,
                 epoch: int, lr: float, t0: float, train_images: int, nhwc: bool = False) -> tuple[dict, float, bool]:
    """The epoch's record (train and validation scores at the default decision parameters), added to the
    history; the validation score; whether it improved on the best so far."""
    train_part = _gathered(collector, d)
    val_part = evaluate_loader(fit.model, task, val_loader, device, d, nhwc)
    params = task.epoch_params(val_part) if hasattr(task, "epoch_params") else task.default_params()
    m_train, m_val = task.metrics(train_part, params), task.metrics(val_part, params)
    record = {"epoch": epoch + 1, "lr": lr, "seconds": round(time.perf_counter() - t0, 2),
              "images_per_s": round(train_images / (time.perf_counter() - t0), 2)}
    for split, m in (("train", m_train), ("val", m_val)):
        for key in ("loss", *task.history_keys):
            record[f"{split}_{key}"] = m.get(key)
    fit.history.append(record)
    score = m_val[task.score_key]
    # A tie goes to the lower validation loss: on a few validation images F1 or the oracle Dice often ties
    # exactly across epochs (5 images give few distinct F1 values), and the first epoch would keep it forever.
    # The segmenter's scores tie within one (image, class) pair's share (SegmentTask.score_tolerance). The best
    # score stays the highest seen, so a chain of ties cannot drift it down.
    loss = m_val.get("loss")
    loss = np.inf if loss is None else float(loss)
    improved = better_epoch(score, loss, fit.best, fit.best_loss, task.score_tolerance(m_val))
    if improved:
        fit.best, fit.best_loss = max(fit.best, score), loss
    return record, score, improved


def better_epoch(score: float, loss: float, best: float, best_loss: float, tolerance: float = 0.0) -> bool:
    """Whether an epoch beats the best so far: a higher validation score by more than `tolerance`, or a score
    within it of the best (a tie) with a lower validation loss."""
    return score > best + tolerance or (score >= best - tolerance and loss < best_loss)


def _final(run_dir: Path, fit: _Fit, task, eval_loaders: dict, device, d: distributed.Dist, say,
           nhwc: bool = False, warnings: list[str] | None = None) -> None:
    """The best epoch's weights, decision parameters tuned on validation, metrics on every split, curves."""
    distributed.barrier(d)  # every process reads the best weights rank 0 wrote (one machine, one folder)
    fit.model.load_state_dict(read_model_file(run_dir)["state_dict"])
    metrics = finish(fit.model, task, eval_loaders, device, d, nhwc)
    if d.main:
        update_model_params(run_dir, thresholds=metrics.get("thresholds"), postprocess=metrics.get("postprocess"))
        if warnings:  # what the splits could not bear (data/splits.py split_warnings), kept with the scores
            metrics["split_warnings"] = warnings
        write_json(run_dir / METRICS_FILE, metrics)
        from steelinspect.train.curves import plot_curves  # matplotlib: imported only when a run finishes

        plot_curves(fit.history, task.score_key, run_dir / CURVES_FILE)
        scored = metrics.get("test") or metrics["val"]  # --test-fraction 0: no test split, say validation's
        which = "test" if metrics.get("test") else "val"
        say(f"{which} {task.score_key} {scored[task.score_key]:.4f}; run directory {run_dir}")
        for line in _per_class_lines(scored, which):
            say(line)
    distributed.barrier(d)


def _per_class_lines(scored: dict, which: str) -> list[str]:
    """Step 2's F1 per class beside the F1 of naming the class on every image, and the classes no better than
    that: a macro figure hides a rare class the model has not learnt."""
    per_class = {c: m for c, m in (scored.get("per_class") or {}).items() if m.get("support")}
    if not per_class:
        return []
    cells = ", ".join(f"class {c} {m['f1']:.3f} ({m['chance_f1']:.3f})" for c, m in per_class.items())
    lines = [f"{which} F1 per class (naming it on every image): {cells}"]
    weak = classes_at_chance(scored)
    if weak:
        lines.append(f"warning: {at_chance_warning(weak, f'{which} image')}: not learnt")
    return lines


def finish(model, task, loaders: dict, device, d: distributed.Dist, nhwc: bool = False) -> dict:
    """Tune on validation, then score train (without augmentation), val and test with the tuned parameters."""
    parts = {name: evaluate_loader(model, task, loader, device, d, nhwc) for name, loader in loaders.items()}
    params = task.tune(parts["val"])
    metrics = {name: task.metrics(part, params) if part.count else None for name, part in parts.items()}
    metrics.update(task.param_fields(params))
    return metrics
