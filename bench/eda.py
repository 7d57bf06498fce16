"""EDA speed and memory: time `eda` on a synthetic dataset and project the full 12,568-image set.

    python bench/eda.py [--images 2000] [--data DATA_DIR]

Peak RSS is printed for two dataset sizes, to show memory does not grow with the dataset.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = 12_568

CHILD = """
import resource, sys, time
from steelinspect.eda.report import write_report
from steelinspect.eda.stats import EdaConfig
t = time.perf_counter()
write_report(sys.argv[1], sys.argv[2], EdaConfig())
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def run(data: Path, out: Path) -> tuple[float, float]:
    result = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out)], capture_output=True, text=True, check=True)
    seconds, rss = result.stdout.split()
    return float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    from steelinspect.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = {}
        for n in (args.images // 4, args.images):
            data = args.data or generate(tmp / f"d{n}", images=n, seed=0)
            images = len(list((data / "train_images").iterdir()))
            sizes[images] = run(data, tmp / f"r{n}")
            if args.data:
                break
    for images, (seconds, rss) in sizes.items():
        print(f"eda: {images} images in {seconds:.1f} s = {images / seconds:.0f} images/s, peak RSS {rss:.0f} MB; "
              f"projected {FULL} images: {FULL / images * seconds:.0f} s (the brightness sample is capped, so "
              f"this overestimates)")


if __name__ == "__main__":
    main()
