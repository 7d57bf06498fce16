"""Synthetic generator speed: images/s and the projected time for the full 12,568-image set.

    python bench/synth.py [--images 500] [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from steelinspect.data.synth import generate

FULL = 12_568


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(Path(tmp) / "d", images=args.images, seed=0, workers=args.workers)
        seconds = time.perf_counter() - start
    rate = args.images / seconds
    print(f"synth: {args.images} images in {seconds:.1f} s = {rate:.1f} images/s; "
          f"full {FULL}-image set projected {FULL / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
