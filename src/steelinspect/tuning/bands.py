"""OK / REVIEW / NG thresholds tuned on the runs' validation splits, or on any other labelled set such as a
plant's reviewed inspections (`steelinspect tune-bands`).

On the data a run was trained on, its validation split is used; on any other DATA_DIR every image the decision
applies to (step 1: all images; the classes: the defect images, single-class ones for a softmax head), as
`evaluate` scores another dataset (data.splits.scored_images). That is how
runs trained on synthetic steel get bands that fit the plant's own frames: `export-reviewed` writes what the
reviewers said as a DATA_DIR, and tuning on it moves T1 to where the real clean frames lie, without retraining.

Per decision (step 1's p_defect on the binary run's validation images; each class's p_class_c on the multiclass
run's) with scores s and truth y:

- T1 is the largest threshold that still sends at least `recall` of the true positives out of OK (p >= T1):
  the k-th largest positive score, k = ceil(recall * positives).
- T2 (>= T1) is either the smallest threshold whose NG band (p > T2) reaches `precision`, or (review_rate) the
  largest one that puts at most `review_rate` of the images into REVIEW (T1 <= p <= T2).

A target the split cannot meet is refused (ConfigError naming the decision and what the split allows). The
scores come from the cascade exactly as `predict` computes them (same engines and preprocessing), so the bands
fit what the log will see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from steelinspect.constants import CLASS_IDS
from steelinspect.data.master import build_master
from steelinspect.data.splits import scored_images
from steelinspect.errors import ConfigError, RunError
from steelinspect.infer.cascade import Cascade, PredictConfig, PredictStats, predict
from steelinspect.io import atomic_write, read_json
from steelinspect.runs.bands import BANDS_FORMAT, bands_path, write_bands
from steelinspect.runs.files import BANDS_FIGURE, SPLITS_FILE

CURVE_POINTS = 200
_EPS = 1e-12  # a precision or share computed as a ratio of counts may miss the target by rounding only


@dataclass(frozen=True)
class BandTargets:
    """What the bands must achieve on validation. Give precision or review_rate, not both."""

    recall: float = 0.99
    precision: float | None = 0.95
    review_rate: float | None = None

    def validate(self) -> None:
        if not 0 < self.recall <= 1:
            raise ConfigError(f"--target-recall must be in (0, 1], got {self.recall}")
        if (self.precision is None) == (self.review_rate is None):
            raise ConfigError("give either --target-precision or --review-rate (one sets T2)")
        if self.precision is not None and not 0 < self.precision <= 1:
            raise ConfigError(f"--target-precision must be in (0, 1], got {self.precision}")
        if self.review_rate is not None and not 0 <= self.review_rate < 1:
            raise ConfigError(f"--review-rate must be in [0, 1), got {self.review_rate}")

    def to_dict(self) -> dict:
        return {"recall": self.recall, "precision": self.precision, "review_rate": self.review_rate}


@dataclass
class DecisionBands:
    """One decision's thresholds, its PR curve and what the thresholds cost on validation."""

    t1: float
    t2: float
    curve: dict  # {"threshold", "precision", "recall"}: p >= threshold called positive
    cost: dict  # images, positives, share_ok / share_review / share_ng, recall, precision, ng_recall, missed

    def to_dict(self) -> dict:
        return {"t1": self.t1, "t2": self.t2, "curve": self.curve, "cost": self.cost}


@dataclass
class BandTuning:
    step1: DecisionBands
    classes: dict[int, DecisionBands]
    skipped: dict[int, str] = field(default_factory=dict)  # class -> why it has no bands
    files: list[Path] = field(default_factory=list)
    step1_split: str = "val"  # "val": the binary run's validation split; "all": every image of another DATA_DIR


def pr_curve(scores: np.ndarray, truth: np.ndarray, points: int = CURVE_POINTS) -> dict:
    """Precision and recall of `p >= threshold` at up to `points` thresholds (the distinct scores, thinned
    evenly, the lowest and highest kept)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    thresholds = np.unique(scores)
    if len(thresholds) > points:
        thresholds = thresholds[np.unique(np.linspace(0, len(thresholds) - 1, points).round().astype(int))]
    ordered = np.sort(scores)
    ordered_pos = np.sort(scores[truth])
    called = len(scores) - np.searchsorted(ordered, thresholds, side="left")
    hits = len(ordered_pos) - np.searchsorted(ordered_pos, thresholds, side="left")
    precision = np.where(called > 0, hits / np.maximum(called, 1), 1.0)
    recall = hits / max(len(ordered_pos), 1)
    return {"threshold": [round(float(t), 6) for t in thresholds],
            "precision": [round(float(p), 6) for p in precision],
            "recall": [round(float(r), 6) for r in recall]}


def band_cost(scores: np.ndarray, truth: np.ndarray, t1: float, t2: float) -> dict:
    """What bands (t1, t2) do on a split: the share of images per band, the recall out of OK (positives with
    p >= t1), the NG band's precision and recall, and the positives left in OK."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    n, positives = len(scores), int(truth.sum())
    ok, ng = scores < t1, scores > t2
    review = ~ok & ~ng
    in_ng = int(ng.sum())
    return {"images": n, "positives": positives,
            "share_ok": float(ok.mean()) if n else 0.0, "share_review": float(review.mean()) if n else 0.0,
            "share_ng": float(ng.mean()) if n else 0.0,
            "recall": float((~ok & truth).sum() / positives) if positives else None,
            "precision": float((ng & truth).sum() / in_ng) if in_ng else None,
            "ng_recall": float((ng & truth).sum() / positives) if positives else None,
            "missed": int((ok & truth).sum()), "clean_in_ng": int((ng & ~truth).sum())}


def t1_for_recall(positive_scores, recall: float) -> float:
    """T1: the largest threshold that still sends `recall` of the positives out of OK (p >= T1), the k-th
    largest positive score with k = ceil(recall * positives)."""
    positives = np.sort(np.asarray(positive_scores, float))[::-1]
    return float(positives[math.ceil(recall * len(positives) - _EPS) - 1])


def choose_bands(scores, truth, targets: BandTargets, what: str = "step 1") -> DecisionBands:
    """T1 and T2 of one decision (see the module's docstring); ConfigError when a target cannot be met."""
    targets.validate()
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ConfigError(f"{what}: scores and truth must be two lists of one length")
    if not len(scores):
        raise ConfigError(f"{what}: there are no images to tune on")
    positives = np.sort(scores[truth])[::-1]
    if not len(positives):
        raise ConfigError(f"{what}: the images tuned on include no positive image, so no recall can be reached")
    t1 = t1_for_recall(positives, targets.recall)
    # T2 candidates: T1 and every distinct score above it (NG is p > T2, so T2 at a score keeps it in REVIEW).
    candidates = np.unique(np.concatenate([[t1], scores[scores >= t1]]))
    ordered, ordered_pos = np.sort(scores), np.sort(positives)
    above = len(scores) - np.searchsorted(ordered, candidates, side="right")
    above_pos = len(ordered_pos) - np.searchsorted(ordered_pos, candidates, side="right")
    if targets.precision is not None:
        precision = np.where(above > 0, above_pos / np.maximum(above, 1), np.nan)
        reached = np.flatnonzero(precision >= targets.precision - _EPS)
        if not len(reached):
            best = np.nanmax(precision) if np.isfinite(precision).any() else float("nan")
            raise ConfigError(f"{what}: no T2 >= T1={t1:.4f} gives the NG band a precision of "
                              f"{targets.precision:g} on the images tuned on (the best is {best:.3f}); lower "
                              f"--target-precision or use --review-rate")
        t2 = float(candidates[reached[0]])
    else:
        in_review = (np.searchsorted(ordered, candidates, side="right")
                     - np.searchsorted(ordered, t1, side="left")) / len(scores)
        if in_review[-1] < targets.review_rate - _EPS:
            raise ConfigError(f"{what}: --review-rate {targets.review_rate:g} is impossible: only "
                              f"{in_review[-1]:.3f} of the images tuned on reach T1={t1:.4f}")
        fits = np.flatnonzero(in_review <= targets.review_rate + _EPS)
        t2 = float(candidates[fits[-1]]) if len(fits) else t1
    return DecisionBands(t1, t2, pr_curve(scores, truth), band_cost(scores, truth, t1, t2))


def _tuning_images(run, master, data: Path, what: str) -> tuple[list[str], str]:
    """(image ids, split name): the run's validation split on the data it was trained on, else the images of
    `data` its head is scored on (split "all", data.splits.scored_images) except any the run trained on (a moved
    or copied training set keeps its image names: thresholds tuned on training images would be too optimistic)."""
    run_dir = run.run_dir
    splits_file = run_dir / SPLITS_FILE
    if not run.trained_on(data):
        try:
            frame = scored_images(master, run.head)
        except ConfigError as error:  # no image of the kind the head needs: name the set
            raise ConfigError(f"{data}: {error}") from None
        frame = frame[~frame.ImageId.isin(run.trained_ids())]
        if frame.empty:
            raise ConfigError(f"{data}: no {'image' if what == 'binary' else 'defect image'} to tune the {what} "
                              f"run's bands on (images the run trained on are left out)")
        return sorted(frame.ImageId), "all"
    if not splits_file.is_file():
        raise RunError(f"the {what} run has no {SPLITS_FILE}: its validation split is unknown", run_dir)
    ids = list(read_json(splits_file).get("val") or [])
    if not ids:
        raise RunError(f"the {what} run has no validation images to tune on", run_dir)
    missing = sorted(set(ids) - set(master.ImageId))
    if missing:
        raise RunError(f"{len(missing)} validation image(s) of the {what} run are not in the data, e.g. "
                       f"{missing[0]}: give the DATA_DIR it was trained on, or another labelled one", run_dir)
    return ids, "val"


def _scores(cascade: Cascade, paths: list[Path], config: PredictConfig, on_image) -> dict[str, dict]:
    stats = PredictStats()
    rows = {row["ImageId"]: row for row in predict(paths, cascade, config, stats, on_image=on_image)}
    if stats.skipped:
        raise RunError(f"{len(stats.skipped)} image(s) to tune on could not be read, e.g. {stats.skipped[0]}",
                       paths[0].parent)
    return rows


def tune_bands(
    binary: str | Path,
    multiclass: str | Path,
    data: str | Path,
    targets: BandTargets = BandTargets(),
    config: PredictConfig | None = None,
    on_image: Callable[[int], None] | None = None,
) -> BandTuning:
    """Tune step 1's bands on the binary run's validation split and each class's on the multiclass run's (or,
    when `data` is not what a run was trained on, on every image of `data` it applies to), and write bands.json +
    bands.png into each run. Nothing is written when any decision is refused. A class with no positive image in
    the split is left unbanded (BandTuning.skipped says so)."""
    from steelinspect.data.layout import data_dir

    targets.validate()
    config = config or PredictConfig()
    binary, multiclass, data = Path(binary), Path(multiclass), Path(data)
    table = build_master(data)  # one row per image; `master` is the same indexed by ImageId for lookups
    master = table.set_index("ImageId", drop=False)
    images = data_dir(data).images
    cascade = Cascade.from_runs(binary, multiclass, config)
    chosen = {"binary": _tuning_images(cascade.binary, table, data, "binary"),
              "multiclass": _tuning_images(cascade.multiclass, table, data, "multiclass")}
    ids = {name: split for name, (split, _) in chosen.items()}
    rows = {name: _scores(cascade, [images / i for i in split], config, on_image) for name, split in ids.items()}

    step1_ids = ids["binary"]
    step1 = choose_bands([rows["binary"][i]["p_defect"] for i in step1_ids],
                         [bool(master.at[i, "Defect"]) for i in step1_ids], targets, "step 1")
    classes, skipped = {}, {}
    class_ids = ids["multiclass"]
    for c in CLASS_IDS:
        truth = [c in master.at[i, "ClassIds"] for i in class_ids]
        if not any(truth):
            skipped[c] = ("no image of this class in the multiclass run's validation split"
                          if chosen["multiclass"][1] == "val" else f"no image of this class in {data}")
            continue
        classes[c] = choose_bands([rows["multiclass"][i][f"p_class_{c}"] for i in class_ids], truth, targets,
                                  f"class {c}")
    tuned = {"data": str(data.resolve()), "targets": targets.to_dict(),
             "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "engine": config.engine}
    result = BandTuning(step1, classes, skipped, step1_split=chosen["binary"][1])
    write_bands(binary, {"role": "step1", "weights_id": cascade.binary.weights_id,
                         "tuned": {**tuned, "split": chosen["binary"][1], "images": len(step1_ids)},
                         "step1": step1.to_dict()})
    write_bands(multiclass, {"role": "classes", "weights_id": cascade.multiclass.weights_id,
                             "tuned": {**tuned, "split": chosen["multiclass"][1], "images": len(class_ids),
                                       "skipped": {str(c): why for c, why in skipped.items()}},
                             "classes": {str(c): d.to_dict() for c, d in classes.items()}})
    result.files = [bands_path(binary), bands_path(multiclass),
                    plot_bands({"step 1": step1}, binary / BANDS_FIGURE),
                    plot_bands({f"class {c}": d for c, d in classes.items()}, multiclass / BANDS_FIGURE)]
    return result


def _point(curve: dict, threshold: float, strict: bool) -> tuple[float, float] | None:
    """(recall, precision) of the curve nearest `threshold` (above it for T2: NG is p > T2)."""
    t = np.asarray(curve["threshold"], float)
    if not len(t):
        return None
    side = t > threshold if strict else t >= threshold
    i = int(np.argmax(side)) if side.any() else len(t) - 1
    return curve["recall"][i], curve["precision"][i]


def plot_bands(decisions: dict[str, DecisionBands], path: Path) -> Path:
    """One PR curve per decision with T1 (the recall kept out of OK) and T2 (the NG band's start) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(decisions), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    for ax, (name, d) in zip(axes[0], decisions.items()):
        ax.plot(d.curve["recall"], d.curve["precision"], "-", color="0.3", lw=1.5)
        for label, point, colour in (("T1", _point(d.curve, d.t1, False), "tab:orange"),
                                     ("T2", _point(d.curve, d.t2, True), "tab:red")):
            if point is not None:
                ax.plot(*point, "o", color=colour, label=f"{label} = {getattr(d, label.lower()):.3f}")
        cost = d.cost
        ax.set_title(f"{name}: OK {cost['share_ok']:.0%} / REVIEW {cost['share_review']:.0%} / "
                     f"NG {cost['share_ng']:.0%}", fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


__all__ = ["BANDS_FORMAT", "BandTargets", "BandTuning", "DecisionBands", "band_cost", "choose_bands", "plot_bands",
           "pr_curve", "t1_for_recall", "tune_bands"]
