"""Scoring the two steps together.

- step1: defect vs clean over every image.
- step2: class decisions on the images step 1 passed that truly have a defect (what step 2 is responsible for).
- end_to_end: class decisions over every image, where an image step 1 called clean has no classes, so a defect
  step 1 missed counts as a miss of each of its classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from steelinspect.constants import CLASS_IDS
from steelinspect.metrics.classification import binary_metrics, chance_f1


def _indicators(class_lists) -> np.ndarray:
    out = np.zeros((len(class_lists), len(CLASS_IDS)), dtype=int)
    for row, ids in enumerate(class_lists):
        for c in ids:
            out[row, c - 1] = 1
    return out


def _class_scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    per_class = {}
    for i, c in enumerate(CLASS_IDS):
        tp = int((truth[:, i] & pred[:, i]).sum())
        fp = int((~truth[:, i].astype(bool) & pred[:, i].astype(bool)).sum())
        fn = int((truth[:, i].astype(bool) & ~pred[:, i].astype(bool)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support = int(truth[:, i].sum())
        per_class[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                             "chance_f1": chance_f1(support, len(truth)), "tp": tp, "fp": fp, "fn": fn}
    seen = [k for k, v in per_class.items() if v["support"] or v["fp"]]
    macro = {key: float(np.mean([per_class[k][key] for k in seen])) if seen else 0.0
             for key in ("precision", "recall", "f1", "chance_f1")}
    exact = float((truth == pred).all(axis=1).mean()) if len(truth) else 0.0
    return {**macro, "exact_match": exact, "n": int(len(truth)), "per_class": per_class}


def evaluate_cascade(predictions: pd.DataFrame, master: pd.DataFrame) -> dict:
    """`predictions` has ImageId, p_defect, has_defect, classes ("1 3"); `master` is the labelled master table.
    Only images present in both are scored."""
    merged = master.merge(predictions, on="ImageId", how="inner", suffixes=("", "_pred"))
    predicted = merged["classes"].fillna("").astype(str).map(lambda s: [int(c) for c in s.split()])
    truth = _indicators(merged.ClassIds)
    pred = _indicators(predicted)
    has_defect = merged.has_defect.astype(str).str.lower().isin(["true", "1"]).to_numpy()
    # Decisions were made with the binary run's tuned threshold: score the decisions, rank by p_defect.
    y = merged.Defect.to_numpy(dtype=int)
    step1 = binary_metrics(y, has_defect.astype(float), threshold=0.5)
    step1["roc_auc"] = binary_metrics(y, merged.p_defect.to_numpy(dtype=float))["roc_auc"]
    del step1["thresholds"]
    step1["chance_f1"] = chance_f1(int(y.sum()), len(y))  # calling every image defective
    passed = has_defect & merged.Defect.to_numpy(dtype=bool)
    return {
        "images": int(len(merged)),
        "step1": step1,
        "step2": _class_scores(truth[passed], pred[passed]),
        "end_to_end": _class_scores(truth, pred),
        "missed_by_step1": int((merged.Defect.to_numpy(dtype=bool) & ~has_defect).sum()),
        "false_alarms_step1": int((~merged.Defect.to_numpy(dtype=bool) & has_defect).sum()),
    }


CASCADE_COLUMNS = ("stage", "precision", "recall", "f1", "chance", "n")


def cascade_rows(metrics: dict) -> list[list]:
    """evaluate_cascade's scores as the table `evaluate-cascade` prints and the demo reports (CASCADE_COLUMNS):
    step 1, then step 2 and end to end, each followed by its classes (n: their support). chance is the F1 of
    naming the class (step 1: a defect) on every image; for a stage, its mean over the classes in its macro."""
    s1 = metrics["step1"]
    rows = [["step 1: defect vs clean", s1["precision"], s1["recall"], s1["f1"], s1["chance_f1"], s1["n"]]]
    for stage, label in (("step2", "step 2: classes (images step 1 passed)"), ("end_to_end", "end to end: classes")):
        m = metrics[stage]
        rows.append([label, m["precision"], m["recall"], m["f1"], m["chance_f1"], m["n"]])
        rows += [[f"  class {c}", pc["precision"], pc["recall"], pc["f1"], pc["chance_f1"], pc["support"]]
                 for c, pc in m["per_class"].items()]
    return rows
