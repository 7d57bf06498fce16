"""Classification quality of both protocols at the default image size, beside the capstone's figures.

    python bench/protocols.py [--epochs 15] [--arch vgg] [--size 256x512] [--out results-protocols.json]

- seed: the capstone's protocol, 180 single-class images per class (1,440 binary / 720 multiclass images), drawn
  from a synthetic set of the real training set's size (12,568 images: class 2 alone is only 1.6% of the
  images, so fewer would not hold 180 of it);
- full: every image of a synthetic set of the capstone's size (1,440 images), multi-label step 2 started from
  step 1's run (`--init`).
Test F1 is on each run's own test split; the capstone reported binary test F1 0.926 and multiclass 0.860 on the
real data. Hours of CPU: run it on a quiet machine (or with --device cuda).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import CACHE, synthetic  # noqa: E402

from steelinspect.data.transforms import parse_size  # noqa: E402
from steelinspect.runs.config import TrainConfig  # noqa: E402
from steelinspect.runs.files import METRICS_FILE, SPLITS_FILE  # noqa: E402
from steelinspect.train.loop import train  # noqa: E402

CAPSTONE = {"binary": 0.926, "multiclass": 0.860}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--arch", default="vgg")
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocols", nargs="+", default=["seed", "full"])
    parser.add_argument("--out", default="results-protocols.json")
    args = parser.parse_args()
    datasets = {"seed": lambda: synthetic(12_568, args.seed), "full": lambda: synthetic(1_440, args.seed)}
    root = CACHE / f"protocol-runs-{int(time.time())}"
    results = {}
    for protocol in args.protocols:
        data = datasets[protocol]()
        for task in ("binary", "multiclass"):
            init = root / protocol / "binary" if protocol == "full" and task == "multiclass" else None
            config = TrainConfig(task=task, data=data, out=root / protocol / task, protocol=protocol, epochs=args.epochs,
                                 image_size=parse_size(args.size), arch=args.arch, seed=args.seed, device=args.device,
                                 init=init)
            start = time.perf_counter()
            run_dir = train(config, progress=True, log=print)
            minutes = (time.perf_counter() - start) / 60
            metrics = json.loads((run_dir / METRICS_FILE).read_text())
            splits = json.loads((run_dir / SPLITS_FILE).read_text())
            test = metrics["test"]
            results[f"{protocol}/{task}"] = {
                "images": {k: len(v) for k, v in splits.items()}, "minutes": round(minutes, 1),
                "test_f1": test["f1"], "test_accuracy": test["accuracy"], "test_roc_auc": test["roc_auc"],
                "per_class_f1": {c: m["f1"] for c, m in test.get("per_class", {}).items()},
                "capstone_test_f1": CAPSTONE[task], "run_dir": str(run_dir),
            }
            Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n{args.arch} at {args.size}, {args.epochs} epochs")
    print(f"{'run':<20}{'train/val/test':>18}{'test F1':>9}{'accuracy':>10}{'ROC AUC':>9}{'capstone F1':>13}{'minutes':>9}")
    for name, r in results.items():
        sizes = "/".join(str(r["images"][k]) for k in ("train", "val", "test"))
        print(f"{name:<20}{sizes:>18}{r['test_f1']:>9.3f}{r['test_accuracy']:>10.3f}{r['test_roc_auc'] or float('nan'):>9.3f}"
              f"{r['capstone_test_f1']:>13.3f}{r['minutes']:>9.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
