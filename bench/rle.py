"""RLE codec speed against the usual Kaggle kernel code, measured in one run.

    python bench/rle.py [--data ../shared/severstal-sample] [--repeat 20]

Prints ms per mask and the ratio kernel/ours (above 1 = ours is faster).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from steelinspect import rle
from steelinspect.data.labels import read_labels


def kernel_decode(mask_rle, shape=(256, 1600)):
    s = mask_rle.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])]
    starts -= 1
    ends = starts + lengths
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, ends):
        img[lo:hi] = 1
    return img.reshape(shape, order="F")


def kernel_encode(img):
    pixels = img.T.flatten()
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


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
