"""RLE codec speed against the usual Kaggle kernel code, measured in one run.

    python bench/rle.py [--data ../shared/severstal-sample] [--repeat 20]

Prints ms per mask and the ratio kernel/ours (above 1 = ours is faster).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: the tests' reference code
from tests.data.kaggle_rle import kernel_decode, kernel_encode  # noqa: E402

from steelinspect import rle  # noqa: E402
from steelinspect.data.labels import read_labels  # noqa: E402


def best_ms(fn, items, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for item in items:
            fn(item)
        times.append(time.perf_counter() - t)
    return min(times) / len(items) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "severstal-sample"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if (args.data / "train.csv").is_file():
        rows = list(read_labels(args.data / "train.csv").EncodedPixels)
        source = f"{len(rows)} real masks from {args.data}"
    else:
        from steelinspect.data.synth import generate
        import tempfile

        tmp = Path(tempfile.mkdtemp()) / "synth"
        generate(tmp, images=100, seed=0)
        rows = list(read_labels(tmp / "train.csv").EncodedPixels)
        source = f"{len(rows)} synthetic masks"
    masks = [kernel_decode(t) for t in rows]
    print(f"RLE codec on {source}, best of {args.repeat}")
    for name, ours, theirs, items in (
        ("decode", rle.decode, kernel_decode, rows),
        ("encode", rle.encode, kernel_encode, masks),
    ):
        a, b = best_ms(ours, items, args.repeat), best_ms(theirs, items, args.repeat)
        print(f"  {name}: steelinspect {a:.3f} ms/mask, kernel {b:.3f} ms/mask, speed-up x{b / a:.2f}")


if __name__ == "__main__":
    main()
