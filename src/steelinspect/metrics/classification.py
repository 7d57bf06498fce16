"""Classification metrics over a whole split (never averaged over batches).

Every function returns the run's metric record M = {"loss", "accuracy", "precision", "recall", "f1", "roc_auc",
"per_class": {...}, "confusion_matrix": ..., "thresholds" (binary, multi-label), "n"}. For several classes, precision, recall and F1 are macro averages over the classes that occur in the
split's truth or predictions;
a ROC AUC that is undefined (one class absent) is None. Each class's record also holds `chance_f1`, the F1 of
naming it on every image, against which a rare class's F1 is read.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from steelinspect.constants import CLASS_IDS, FEW_POSITIVES


def _auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, score))


def chance_f1(support: int, n: int) -> float:
    """The F1 of naming a class on every one of `n` images, `support` of which have it: what a model that
    cannot tell the class scores at best by threshold alone (its precision is the class's share, its recall 1)."""
    return 2.0 * support / (n + support) if support else 0.0


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> dict[str, dict]:
    """Columns are classes 1..4 as 0/1 indicators."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0, labels=range(y_true.shape[1]))
    return {
        str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                 "roc_auc": _auc(y_true[:, i], scores[:, i]), "chance_f1": chance_f1(int(s[i]), len(y_true))}
        for i, c in enumerate(CLASS_IDS[: y_true.shape[1]])
    }


def at_chance_warning(ids: list[str], images: str = "image") -> str:
    """The words of the warning about `classes_at_chance`, for one class or several."""
    if len(ids) == 1:
        return f"class {ids[0]} scores no better than naming it on every {images}"
    return f"classes {', '.join(ids)} score no better than naming each on every {images}"


def classes_at_chance(metrics: dict) -> list[str]:
    """The classes of a metric record that occur in its split and score an F1 no higher than naming them on every
    image (`chance_f1`): a rare class the model has not learnt, whatever its threshold."""
    return [c for c, m in (metrics.get("per_class") or {}).items()
            if m.get("support") and m["f1"] <= m["chance_f1"] + 1e-9]


def _record(loss: float | None, y_true: np.ndarray, y_pred: np.ndarray, scores: tuple, roc_auc: float | None,
            per_class: dict, confusion: list, **decision) -> dict:
    """The metric record M of every head, in one key order: `scores` is (precision, recall, F1); `decision` the
    thresholds the predictions were made with, where the head has any."""
    p, r, f = scores
    return {
        "loss": loss,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "roc_auc": roc_auc,
        "per_class": per_class,
        "confusion_matrix": confusion,
        **decision,
        "n": int(len(y_true)),
    }


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5, loss: float | None = None) -> dict:
    """Defect (1) vs clean (0)."""
    y_true = np.asarray(y_true).astype(int).ravel()
    prob = np.asarray(prob, dtype=np.float64).ravel()
    y_pred = (prob >= threshold).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    return _record(loss, y_true, y_pred, (p, r, f), _auc(y_true, prob), {},
                   confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(), thresholds=[float(threshold)])


def multiclass_metrics(y_true: np.ndarray, probs: np.ndarray, loss: float | None = None) -> dict:
    """One class per image (softmax): y_true holds class indices 0..3."""
    y_true = np.asarray(y_true).astype(int).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    y_pred = probs.argmax(axis=1)
    onehot_true, onehot_pred = np.eye(k)[y_true], np.eye(k)[y_pred]
    seen = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0, labels=seen)
    present = [i for i in range(k) if 0 < onehot_true[:, i].sum() < len(y_true)]
    auc = float(np.mean([roc_auc_score(onehot_true[:, i], probs[:, i]) for i in present])) if present else None
    return _record(loss, y_true, y_pred, (p, r, f), auc,
                   _per_class(onehot_true.astype(int), onehot_pred.astype(int), probs),
                   confusion_matrix(y_true, y_pred, labels=range(k)).tolist())


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, thresholds, loss: float | None = None) -> dict:
    """Several classes per image (sigmoids). accuracy is the exact-match ratio (all four labels right);
    confusion_matrix holds one [[tn, fp], [fn, tp]] per class."""
    y_true = np.asarray(y_true).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = (probs >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(int)
    # Macro over the classes that occur (in truth or prediction): a class absent from both says nothing.
    seen = [i for i in range(y_true.shape[1]) if y_true[:, i].any() or y_pred[:, i].any()] or [0]
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0, labels=seen)
    aucs = [_auc(y_true[:, i], probs[:, i]) for i in range(y_true.shape[1])]
    aucs = [a for a in aucs if a is not None]
    return _record(loss, y_true, y_pred, (p, r, f), float(np.mean(aucs)) if aucs else None,
                   _per_class(y_true, y_pred, probs), multilabel_confusion_matrix(y_true, y_pred).tolist(),
                   thresholds=[float(t) for t in thresholds])


def class_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """A sigmoid output's decision threshold from validation: F1-optimal (best_f1_threshold), or, for a class with
    1 to FEW_POSITIVES - 1 validation images, the break-even threshold (break_even_threshold)."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    if 0 < y_true.sum() < min(FEW_POSITIVES, len(y_true)):
        return break_even_threshold(y_true, prob)
    return best_f1_threshold(y_true, prob)


def break_even_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The threshold that calls as many images positive as hold the class (precision equals recall on them):
    midway between the k-th and (k + 1)-th highest probability, k the positives (fewer than the images)."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    ranked = np.sort(np.asarray(prob, dtype=np.float64).ravel())[::-1]
    k = int(y_true.sum())
    if not 0 < k < len(ranked):
        raise ValueError(f"break-even needs some but not all images positive, got {k} of {len(ranked)}")
    return float((ranked[k - 1] + ranked[k]) / 2)


def best_f1_threshold(y_true: np.ndarray, prob: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The probability threshold maximising F1 (ties: the one closest to 0.5)."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    prob = np.asarray(prob, dtype=np.float64).ravel()
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3) if grid is None else grid
    if not y_true.any():
        return 0.5
    pred = prob[None, :] >= grid[:, None]
    tp = (pred & y_true).sum(1)
    fp = (pred & ~y_true).sum(1)
    fn = (~pred & y_true).sum(1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])
