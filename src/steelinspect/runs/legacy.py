"""Readers of the previous run-directory layout (runs written before model.pt format 2), so old runs still load.

What changed, one name per meaning:
  model.pt      format 1 stored the model head ("binary" | "multiclass" | "multilabel" | "segment") under "task";
                format 2 stores it under "head" (TrainConfig.task is what was trained: binary | multiclass | segment).
  metrics.json  "thresholds" held a list of floats for a classifier and the post-processing dict for a segmenter;
                now "thresholds" is always a classifier's list and the segmenter's setting is "postprocess", as in
                model.pt. A binary split's record said "threshold" (a float); now "thresholds", a list like
                multi-label's.
"""

from __future__ import annotations

SPLITS = ("train", "val", "test", "all")


def upgrade_model_blob(blob: dict) -> dict:
    """A format-1 model.pt dict in format 2 (the same dict, changed in place); a format-2 one unchanged."""
    if blob.get("format") == 1:
        blob["head"] = blob.pop("task")
        blob["format"] = 2
    return blob


def upgrade_metrics(metrics: dict) -> dict:
    """A metrics.json (or evaluation.json) dict in today's names (the same dict, changed in place)."""
    if isinstance(metrics.get("thresholds"), dict):
        metrics["postprocess"] = metrics.pop("thresholds")
    for split in SPLITS:
        record = metrics.get(split)
        if isinstance(record, dict) and "threshold" in record:
            record["thresholds"] = [record.pop("threshold")]
    return metrics
