"""What tuning on out-of-fold predictions buys over tuning on one validation split, with the models held fixed.

    python bench/oof_thresholds.py PARENT [--holdout DATA_DIR | --holdout-images 1200 --holdout-seed 1]
                                          [--val-size 93] [--draws 3] [--out DIR]

PARENT is a classifier `--folds` parent (`train multiclass DATA --folds K`). Its ensemble is scored on the held-out
set twice over: with the thresholds tuned on all its out-of-fold predictions (ensemble.json, as `train --folds`
tunes them), and with thresholds tuned on --draws random subsets of those predictions the size of one run's
validation split (--val-size images, seeded), which is what a single run or a run-directory ensemble tunes on.
Only the thresholds differ, so the gap is what the larger tuning set buys; the class counts of each subset are
printed, since a rare class has a few images in one. Scores are on synthetic data unless --holdout is real.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from common import cpu_model, synthetic

from steelinspect.runs.config import TrainConfig
from steelinspect.runs.ensemble import load_model, read_ensemble, store_params
from steelinspect.runs.files import OOF_CSV
from steelinspect.train.api import evaluate
from steelinspect.train.tasks import Collector, make_task


def tuned_on(rows: pd.DataFrame, task, p_cols: list[str], y_cols: list[str]) -> list[float]:
    """The task's thresholds tuned on these out-of-fold rows alone."""
    collector = Collector([rows[p_cols].to_numpy(np.float32)], [rows[y_cols].to_numpy(np.float32)],
                          [np.arange(len(rows))], 0.0, len(rows))
    return task.param_fields(task.tune(collector))["thresholds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parent", type=Path)
    parser.add_argument("--holdout", type=Path, help="a labelled DATA_DIR to score on (default: a synthetic set)")
    parser.add_argument("--holdout-images", type=int, default=1200)
    parser.add_argument("--holdout-seed", type=int, default=1)
    parser.add_argument("--val-size", type=int, default=93, help="images per subset (one run's validation split)")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if not (args.parent / OOF_CSV).is_file() or not read_ensemble(args.parent).get("folds"):
        print(f"{args.parent}: not a classifier --folds parent ({OOF_CSV} missing)", file=sys.stderr)
        return 2
    holdout = args.holdout or synthetic(args.holdout_images, args.holdout_seed)
    oof = pd.read_csv(args.parent / OOF_CSV)
    p_cols = [c for c in oof.columns if c.startswith("p_")]
    y_cols = [c for c in oof.columns if c.startswith("y_")]
    if not y_cols:
        print(f"{args.parent}: a softmax head (--protocol seed) has one threshold-free decision", file=sys.stderr)
        return 2
    task = make_task(load_model(args.parent).head)
    task.configure(TrainConfig.from_dict(json.loads((args.parent / "fold_1" / "config.json").read_text())))
    variants = {f"all {len(oof)} out-of-fold images": read_ensemble(args.parent)["thresholds"]}
    for draw in range(args.draws):
        rows = oof.sample(n=min(args.val_size, len(oof)), random_state=draw)
        counts = "/".join(str(int(rows[c].sum())) for c in y_cols)
        variants[f"{len(rows)}-image subset {draw} (positives {counts})"] = tuned_on(rows, task, p_cols, y_cols)
    print(f"CPU: {cpu_model()}; parent {args.parent}; held out: {holdout}; out-of-fold positives per output: "
          f"{'/'.join(str(int(oof[c].sum())) for c in y_cols)}")
    print(f"{'thresholds tuned on':<44} {'thresholds':<28} held-out F1 per output, macro")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, thresholds) in enumerate(variants.items()):
            copy = Path(tmp) / f"parent-{i}"
            shutil.copytree(args.parent, copy)
            store_params(copy, thresholds=thresholds)
            held = evaluate(copy, holdout, device="cpu", workers=args.workers)["all"]
            per_class = held.get("per_class")  # step 2; step 1 has its one score
            f1 = [per_class[c]["f1"] for c in sorted(per_class)] if per_class else [held[task.score_key]]
            print(f"{name:<44} {str(np.round(thresholds, 3).tolist()):<28} "
                  f"{' '.join(f'{v:.3f}' for v in f1)}  {np.mean(f1):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
