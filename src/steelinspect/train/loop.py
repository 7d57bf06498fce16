"""The training loop: one loop for every task, read top to bottom.

data -> splits -> datasets -> model -> for each epoch: train, validate, keep the best, checkpoint -> tune the
decision parameters on validation -> metrics for train/val/test -> run directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from steelinspect.data.dataset import EpochSampler
from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.data.splits import frames_from_ids, make_splits, split_ids
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ConfigError, RunError
from steelinspect.io import read_json, write_json
from steelinspect.models.factory import build_model, encoder_of
from steelinspect.train import distributed
from steelinspect.train import testhooks
from steelinspect.train.checkpoint import CHECKPOINT_FILE, MODEL_FILE, load_checkpoint, save_checkpoint, save_model
from steelinspect.train.config import TrainConfig
from steelinspect.train.tasks import Collector, make_task


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown --device {name!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but CUDA is not available here")
    return device


def _prepare_run_dir(config: TrainConfig, is_main: bool) -> dict[str, list[str]] | None:
    """Create or check the run directory; the stored splits when resuming."""
    run_dir = Path(config.out)
    if config.resume:
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise RunError(f"nothing to resume: no {CHECKPOINT_FILE}", run_dir)
        saved = TrainConfig.read(run_dir / "config.json")
        changed = saved.differs_from(config)
        if changed:
            raise ConfigError(f"--resume with different settings ({', '.join(changed)}) than the run in {run_dir}")
        return read_json(run_dir / "splits.json")
    if (run_dir / MODEL_FILE).exists() or (run_dir / CHECKPOINT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume to continue it or choose another --out")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    return None


def _loader(dataset, batch_size: int, sampler, workers: int) -> DataLoader:
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
def evaluate_loader(model, task, loader, device, d: distributed.Dist) -> Collector:
    """Run a model over a loader and collect the whole split (gathered across processes)."""
    model.eval()
    collector = task.new_collector()
    for x, y, idx in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        collector.add(task.probabilities(logits), y, idx, float(task.loss(logits, y)))
    return type(collector).merge(distributed.gather(d, collector))


def train(config: TrainConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Train one model as configured and return its run directory."""
    config.validate()
    device = resolve_device(config.device)
    d = distributed.setup(device)
    if device.type == "cuda" and d.enabled:
        device = torch.device("cuda", d.local_rank)
    say = (log or (lambda _msg: None)) if d.main else (lambda _msg: None)
    try:
        return _train(config, device, d, progress and d.main, say)
    finally:
        distributed.cleanup(d)


def _train(config: TrainConfig, device: torch.device, d: distributed.Dist, progress: bool, say) -> Path:
    run_dir = Path(config.out)
    layout = data_dir(config.data)
    stored = _prepare_run_dir(config, d.main)
    distributed.barrier(d)
    head = config.head
    task = make_task(head)
    if hasattr(task, "configure"):  # task-specific settings (segment: crop widths)
        task.configure(config)

    # Data: the same splits on every process (fixed by the seed, or read back when resuming).
    master = build_master(config.data)
    if stored is None:
        splits = make_splits(master, head, config.protocol, config.per_class, config.seed, config.val_fraction,
                             config.test_fraction)
        if d.main:
            write_json(run_dir / "splits.json", split_ids(splits))
            write_json(run_dir / "config.json", config.to_dict())
    else:
        splits = frames_from_ids(master, stored)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise ConfigError(f"too few images to train and validate ({sum(len(s) for s in splits.values())} selected)")
    preprocess = Preprocess(*config.image_size)
    datasets = {name: task.dataset(layout.images, frame, preprocess, name == "train" and config.augment, config.seed)
                for name, frame in splits.items()}
    task.setup_loss(datasets["train"].targets)
    say(f"{head}: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} images; {config.arch} at "
        f"{config.image_size[0]}x{config.image_size[1]} on {device}" + (f", {d.world} processes" if d.enabled else ""))

    # Model, optimiser, schedule: initialisation fixed by the seed.
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = build_model(config.arch, task.num_outputs)
    if config.weights:
        encoder = encoder_of(model)
        if encoder is None:
            raise ConfigError(f"--weights needs a ResNet-based --arch; {config.arch} has no ResNet encoder")
        from steelinspect.models.weights import load_torchvision_resnet

        report = load_torchvision_resnet(encoder, config.weights)
        say(f"loaded {len(report['loaded'])} tensors from {config.weights} ({len(report['missing'])} left as initialised)")
    if config.init:
        from steelinspect.train.checkpoint import init_from_run

        loaded = init_from_run(model, config.init, config.arch, held_out=[*splits["val"].ImageId, *splits["test"].ImageId])
        say(f"started from {config.init}: {loaded} of {len(model.state_dict())} tensors (the head is new)")
    model.to(device)
    net = DistributedDataParallel(model) if d.enabled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr * 0.05)

    if d.enabled and config.batch_size % d.world:
        raise ConfigError(f"--batch-size {config.batch_size} must divide by the {d.world} processes")
    per_rank = config.batch_size // d.world
    train_sampler = EpochSampler(len(datasets["train"]), config.batch_size, config.seed, True, d.rank, d.world)
    train_loader = _loader(datasets["train"], per_rank, train_sampler, config.workers)
    # Evaluation sees every split without augmentation (the training split too, for its final metrics).
    eval_sets = {**datasets, "train": task.dataset(layout.images, splits["train"], preprocess, False, config.seed)}
    eval_loaders = {name: _loader(ds, per_rank, _Shard(len(ds), d.rank, d.world), config.workers)
                    for name, ds in eval_sets.items()}

    start, history, best = 0, [], -np.inf
    if config.resume:
        state = load_checkpoint(run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history, best = state["epoch"] + 1, state["history"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        say(f"resuming after epoch {start} of {config.epochs}")

    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        train_sampler.set_epoch(epoch)
        datasets["train"].set_epoch(epoch)
        net.train()
        collector = task.new_collector()
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False,
                   unit="batch", dynamic_ncols=True)
        seen = 0
        for x, y, idx in bar:
            x, y = x.to(device), y.to(device)
            logits = net(x)
            loss = task.loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
            collector.add(task.probabilities(logits.detach()), y, idx, loss_value)
            seen += len(x) * d.world
            bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        train_part = type(collector).merge(distributed.gather(d, collector))
        val_part = evaluate_loader(model, task, eval_loaders["val"], device, d)
        params = task.default_params()
        m_train, m_val = task.metrics(train_part, params), task.metrics(val_part, params)
        record = {"epoch": epoch + 1, "lr": lr, "seconds": round(time.perf_counter() - t0, 2),
                  "images_per_s": round(len(datasets["train"]) / (time.perf_counter() - t0), 2)}
        for split, m in (("train", m_train), ("val", m_val)):
            for key in ("loss", *task.history_keys):
                record[f"{split}_{key}"] = m.get(key)
        history.append(record)
        score = m_val[task.score_key]
        improved = score > best
        if improved:
            best = score
        if d.main:
            if improved:
                save_model(run_dir, model, config, head, task.num_outputs, preprocess, epoch=epoch + 1,
                           loss_weights=task.loss_weights(), **task.param_fields(params))
            save_checkpoint(run_dir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                      "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history,
                                      "best": best, "torch_rng": torch.get_rng_state(),
                                      "numpy_rng": np.random.get_state()})
            write_json(run_dir / "history.json", history)
        say(f"epoch {epoch + 1}/{config.epochs}: train loss {m_train['loss']:.4f}, val loss {m_val['loss']:.4f}, "
            f"val {task.score_key} {score:.4f}{' (best)' if improved else ''}, {record['images_per_s']:.1f} img/s")
        testhooks.after_epoch(epoch + 1)  # test-only: does nothing unless STEELINSPECT_TEST_INTERRUPT is set
        distributed.barrier(d)

    # Final: the best epoch's weights, decision parameters tuned on validation, metrics on every split.
    from steelinspect.train.checkpoint import read_model_file, update_model_params

    distributed.barrier(d)  # every process reads the best weights rank 0 wrote (one machine, one folder)
    model.load_state_dict(read_model_file(run_dir)["state_dict"])
    metrics = finish(model, task, eval_loaders, device, d)
    if d.main:
        update_model_params(run_dir, **task.param_fields(metrics["thresholds"]))
        write_json(run_dir / "metrics.json", metrics)
        from steelinspect.train.curves import plot_curves

        plot_curves(history, task.score_key, run_dir / "curves.png")
        say(f"test {task.score_key} {metrics['test'][task.score_key]:.4f}; run directory {run_dir}")
    distributed.barrier(d)
    return run_dir


def finish(model, task, loaders: dict, device, d: distributed.Dist) -> dict:
    """Tune on validation, then score train (without augmentation), val and test with the tuned parameters."""
    parts = {name: evaluate_loader(model, task, loader, device, d) for name, loader in loaders.items()}
    params = task.tune(parts["val"])
    metrics = {name: task.metrics(part, params) if part.count else None for name, part in parts.items()}
    metrics["thresholds"] = params
    return metrics
