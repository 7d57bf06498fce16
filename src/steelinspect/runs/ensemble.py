"""Ensembles: several runs of one head whose probabilities are averaged before any decision.

An ensemble is either a K-fold parent (`train ... --folds K`: PARENT/ensemble.json names its members fold_1..fold_K
and holds the ensemble's decision parameters, tuned on the out-of-fold predictions), or several run directories
given together for one step (their decision parameters are then averaged element-wise: nothing was tuned for the
ensemble itself; a fold parent is the better-founded way).

A third kind of parent is written by `steelinspect ensemble` (tuning/ensemble.py): classifier runs trained on one
DATA_DIR with one split (same --seed), possibly at different resolutions, whose thresholds are tuned on the
validation split they share.

`load_model` returns a LoadedRun for one run and an Ensemble (a LoadedRun whose `model` averages its members) for
several, so every path that takes a run takes an ensemble.

Classifier members may differ in image size (a whole strip at 128x416 beside tiles of the full 256x1600 strip): the
ensemble's input is its largest member's, and each smaller member gets it shrunk inside the ensemble
(`member_input`: OpenCV's area rule, then normalised again as its own preprocessing would). Members must share
their normalisation; segmenters must share their working size too, as their masks are averaged pixel by pixel.

Averaging is in probability space (after the sigmoid or softmax), and the result is handed on as logits whose
sigmoid / softmax *is* the mean probability (`average_as_logits`): every consumer (engines, TTA, tasks,
post-processing) applies its activation as for one model and gets the mean, with no second code path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from steelinspect.data.transforms import Preprocess, area_shrink
from steelinspect.errors import RunError
from steelinspect.io import read_json, write_json
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.files import CONFIG_FILE, ENSEMBLE_FILE, FOLD_PREFIX, MODEL_FILE
from steelinspect.runs.store import LoadedRun, load_run, update_model_params

FORMAT = 1
# Logits are clipped to +-LOGIT_LIMIT (sigmoid(30) = 1 - 9e-14, i.e. 1.0 in float32) so that a mean probability
# of exactly 0 or 1 never becomes an infinite logit that a loss would turn into NaN.
LOGIT_LIMIT = 30.0


def average_as_logits(logits: Sequence[torch.Tensor], head: str) -> torch.Tensor:
    """Logits whose activation is the mean of the members' probabilities (float64 inside, float32 out).

    Sigmoid heads: logit(mean p). Softmax head: log(mean p) (softmax of it is mean p, which already sums to 1)."""
    stacked = torch.stack([x.double() for x in logits])
    if head == "multiclass":
        probs = torch.softmax(stacked, dim=2).mean(0)
        return probs.clamp_min(torch.exp(torch.tensor(-LOGIT_LIMIT, dtype=torch.float64))).log().float()
    probs = torch.sigmoid(stacked).mean(0)
    return torch.logit(probs).clamp(-LOGIT_LIMIT, LOGIT_LIMIT).float()


def member_input(x: torch.Tensor, ensemble: Preprocess, member: Preprocess) -> torch.Tensor:
    """A batch preprocessed for the ensemble (N, 1, H, W) -> as `member` would have preprocessed it.

    Shrinking commutes with the affine normalisation, so the member's own INTER_AREA shrink applied to the
    normalised batch (area_shrink) equals its preprocessing of the raw image but for the 8-bit rounding that
    OpenCV applies after resizing; "image" normalisation then standardises each image again, because shrinking
    lowers its spread."""
    if member.size == ensemble.size:
        return x
    x = area_shrink(x, member.size)
    if member.norm == "image":
        flat = x.reshape(x.shape[0], -1)
        mean = flat.mean(dim=1).reshape(-1, 1, 1, 1)
        std = flat.std(dim=1, unbiased=False).clamp_min(1e-3).reshape(-1, 1, 1, 1)
        x = (x - mean) / std
    return x


class EnsembleModule(nn.Module):
    """The members run one after the other on the same batch (each shrunk to its own size where it is smaller
    than the ensemble's); out come average_as_logits' logits."""

    def __init__(self, members: Sequence[nn.Module], head: str, preprocess: Preprocess,
                 member_preprocess: Sequence[Preprocess]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.head = head
        self.preprocess = preprocess
        self.member_preprocess = list(member_preprocess)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average_as_logits([m(member_input(x, self.preprocess, p))
                                  for m, p in zip(self.members, self.member_preprocess)], self.head)


@dataclass
class Ensemble(LoadedRun):
    members: list[LoadedRun] = field(default_factory=list)
    parent: Path | None = None  # the K-fold parent holding ensemble.json; None for run directories given together

    def trained_ids(self) -> set[str]:
        """Every image some member trained on."""
        return set().union(*(m.trained_ids() for m in self.members))


def is_parent(path: str | Path) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


def read_ensemble(parent: str | Path) -> dict:
    parent = Path(parent)
    try:
        data = read_json(parent / ENSEMBLE_FILE)
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {ENSEMBLE_FILE} ({exc})", parent) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("members"):
        raise RunError(f"not a steelinspect {ENSEMBLE_FILE} (no format {FORMAT} member list)", parent / ENSEMBLE_FILE)
    return data


def write_ensemble(parent: str | Path, data: dict) -> None:
    write_json(Path(parent) / ENSEMBLE_FILE, {"format": FORMAT, **data})


def _refuse_unfinished(path: Path) -> None:
    """One line for a directory that is neither a run nor an ensemble (a fold parent still training included)."""
    if not path.is_dir():
        raise RunError("run directory not found", path)
    if (path / MODEL_FILE).is_file():
        return
    if any(path.glob(f"{FOLD_PREFIX}*")) and (path / CONFIG_FILE).is_file():
        raise RunError(f"a --folds parent without {ENSEMBLE_FILE}: its training has not finished (continue it with "
                       "--resume)", path)
    raise RunError(f"neither a run directory ({MODEL_FILE}) nor an ensemble ({ENSEMBLE_FILE})", path)


def member_dirs(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The run directories behind one argument: a run is itself; a fold parent is its members; several paths are
    each expanded."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise RunError("no run directory given")
    out = []
    for path in map(Path, paths):
        if is_parent(path):
            out += [path / m for m in read_ensemble(path)["members"]]
        else:
            _refuse_unfinished(path)
            out.append(path)
    return out


def ensemble_id(weights_ids: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for w in weights_ids:
        digest.update(w.encode())
    return digest.hexdigest()


def load_model(paths: str | Path | Sequence[str | Path], device: str | torch.device = "cpu") -> LoadedRun:
    """One run directory -> its LoadedRun; a fold parent, or several run directories -> an Ensemble."""
    single = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(single) == 1 and not is_parent(single[0]):
        _refuse_unfinished(Path(single[0]))
        return load_run(single[0], device)
    parent = Path(single[0]) if len(single) == 1 else None
    runs = [load_run(d, device) for d in member_dirs(single)]
    first = runs[0]
    for run in runs[1:]:
        if run.head != first.head:
            raise RunError(f"an ensemble's members must share one head: {run.head} beside {first.head} "
                           f"({first.run_dir})", run.run_dir)
    preprocess = ensemble_preprocess(runs)
    if parent is not None:
        stored = read_ensemble(parent)
        thresholds, postprocess = list(stored.get("thresholds") or []), stored.get("postprocess")
        config = TrainConfig.read(parent / CONFIG_FILE)
    else:
        thresholds, postprocess = _averaged_params(runs)
        config = first.config
    archs = list(dict.fromkeys(r.arch for r in runs))
    return Ensemble(
        model=EnsembleModule([r.model for r in runs], first.head, preprocess, [r.preprocess for r in runs]).eval(),
        head=first.head,
        preprocess=preprocess,
        thresholds=thresholds,
        class_ids=first.class_ids,
        config=config,
        run_dir=parent if parent is not None else first.run_dir,
        arch="+".join(archs),
        weights_id=ensemble_id([r.weights_id for r in runs]),
        postprocess=postprocess,
        loss_weights=first.loss_weights,
        members=runs,
        parent=parent,
    )


def ensemble_preprocess(runs: Sequence[LoadedRun]) -> Preprocess:
    """The ensemble's input: its largest member's preprocessing, which every other member's must fit inside
    (one normalisation, no side larger); segmenters must all share it."""
    largest = max(runs, key=lambda r: r.preprocess.height * r.preprocess.width)
    big = largest.preprocess
    for run in runs:
        p = run.preprocess
        if run.head == "segment" and p != big:
            raise RunError(f"an ensemble's segmenters must share their preprocessing (their masks are averaged "
                           f"pixel by pixel): {p} beside {big} ({largest.run_dir})", run.run_dir)
        if (p.norm, p.mean, p.std) != (big.norm, big.mean, big.std):
            raise RunError(f"an ensemble's members must share their normalisation: {p.norm} (mean {p.mean}, std "
                           f"{p.std}) beside {big.norm} (mean {big.mean}, std {big.std}) ({largest.run_dir})",
                           run.run_dir)
        if p.height > big.height or p.width > big.width:
            raise RunError(f"an ensemble's members must fit inside its largest input: {p.height}x{p.width} beside "
                           f"{big.height}x{big.width} ({largest.run_dir}); give them one aspect ratio or one side",
                           run.run_dir)
    return big


def _averaged_params(runs: list[LoadedRun]) -> tuple[list[float], dict | None]:
    """Run directories given together: their thresholds, and post-processing thresholds and minimum areas,
    averaged element-wise (the members' own gate setting, when they agree)."""
    thresholds = [float(sum(v) / len(v)) for v in zip(*(r.thresholds for r in runs))] if runs[0].thresholds else []
    posts = [r.postprocess for r in runs if r.postprocess]
    if len(posts) < len(runs):
        return thresholds, None
    post = dict(posts[0])
    post["thresholds"] = [float(sum(v) / len(v)) for v in zip(*(p["thresholds"] for p in posts))]
    post["min_areas"] = [int(round(sum(v) / len(v))) for v in zip(*(p["min_areas"] for p in posts))]
    return thresholds, post


def store_params(run: LoadedRun | str | Path, thresholds: list[float] | None = None,
                 postprocess: dict | None = None) -> None:
    """Tuned decision parameters into a run's model.pt, or into a fold parent's ensemble.json."""
    path = Path(run.run_dir if isinstance(run, LoadedRun) else run)
    if isinstance(run, Ensemble) and run.parent is None:
        raise RunError("run directories given together have nowhere to store tuned parameters: tune a --folds "
                       "parent (or one run)", path)
    if not is_parent(path):
        update_model_params(path, thresholds=thresholds, postprocess=postprocess)
        return
    data = read_ensemble(path)
    if thresholds is not None:
        data["thresholds"] = [float(t) for t in thresholds]
    if postprocess is not None:
        data["postprocess"] = postprocess
    write_ensemble(path, {k: v for k, v in data.items() if k != "format"})
