"""Cascade prediction speed (images/s at full 1600x256 input images) and peak memory at two image counts.

    python bench/predict.py [--images 300] [--binary RUN --multiclass RUN]

Without runs, freshly initialised default models (vgg at 256x512) are used: speed does not depend on weights.
Memory is measured in child processes for N/10 and N images: flat means streaming works.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from steelinspect.infer.cascade import Cascade, PredictConfig, PredictStats, predict, write_predictions
images, binary, multi, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
paths = sorted(Path(images).iterdir())[:limit]
config = PredictConfig(batch_size=16, workers=2, device="cpu")
cascade = Cascade.from_runs(binary, multi, config)
stats = PredictStats()
write_predictions(predict(paths, cascade, config, stats), Path(sys.argv[5]))
print(json.dumps({"images": stats.images, "img_s": stats.images_per_s,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def fresh_runs(root: Path, data: Path) -> tuple[Path, Path]:
    """Untrained default-architecture runs (one epoch on 16 images is the cheapest way to a valid run dir)."""
    from steelinspect.train.config import TrainConfig
    from steelinspect.train.loop import train

    small = synthetic(48)
    out = []
    for task in ("binary", "multiclass"):
        cfg = TrainConfig(task=task, data=small, out=root / task, epochs=1, batch_size=16, workers=0)
        out.append(train(cfg, progress=False))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--binary", type=Path)
    parser.add_argument("--multiclass", type=Path)
    args = parser.parse_args()
    data = synthetic(args.images, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        binary, multi = (args.binary, args.multiclass) if args.binary else fresh_runs(tmp, data)
        results = {}
        for n in (max(1, args.images // 10), args.images):
            proc = subprocess.run([sys.executable, "-c", CHILD, str(data / "train_images"), str(binary), str(multi),
                                   str(n), str(tmp / f"p{n}.csv")], capture_output=True, text=True, check=True)
            results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    for n, r in results.items():
        print(f"cascade on {r['images']} images: {r['img_s']:.1f} images/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    small, large = results.values()
    print(f"memory ratio {large['images']} vs {small['images']} images: x{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (flat = ~1)")


if __name__ == "__main__":
    main()
