"""EDA speed and memory: time `steelinspect eda` at two dataset sizes and project the full 12,568-image set.

    python bench/eda.py [--unique 1000] [--sizes 3142 12568] [--sample 2000] [--workers 4]
    python bench/eda.py --data DATA_DIR            # one run on an existing dataset

Synthetic data: `--unique` images are generated (steelinspect.data.synth), then hard-linked under new names,
with their label rows copied, up to each size. The EDA's work per image is the same for a linked file, so a
full-size run costs seconds of generation instead of minutes; the page cache is warmer than on a fresh
12,568-file dataset, so cold-disk reads are not measured. Each size runs in a fresh process, so peak RSS
compares like with like: flat memory means the two peaks are close.
"""

from __future__ import annotations

import argparse
import csv
import os
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
write_report(sys.argv[1], sys.argv[2], EdaConfig(sample=int(sys.argv[3]), workers=int(sys.argv[4])))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def replicate(source: Path, out: Path, images: int) -> Path:
    """A dataset of `images` images: hard links to `source`'s images under new ids, label rows copied."""
    names = sorted(p.name for p in (source / "train_images").iterdir())
    with (source / "train.csv").open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows: dict[str, list[list[str]]] = {}
        for row in reader:
            rows.setdefault(row[0], []).append(row)
    (out / "train_images").mkdir(parents=True)
    with (out / "train.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(images):
            name = names[i % len(names)]
            new = f"{i:05d}{name}"
            os.link(source / "train_images" / name, out / "train_images" / new)
            writer.writerows([[new, *row[1:]] for row in rows.get(name, [])])
    return out


def run(data: Path, out: Path, sample: int, workers: int) -> tuple[float, float]:
    result = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), str(sample), str(workers)],
                            capture_output=True, text=True, check=True)
    seconds, rss = result.stdout.split()
    return float(seconds), float(rss)


def report(images: int, seconds: float, rss: float) -> None:
    print(f"eda: {images} images in {seconds:.1f} s = {images / seconds:.0f} images/s, peak RSS {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="time one run on this dataset instead of synthetic data")
    parser.add_argument("--unique", type=int, default=1000, help="distinct synthetic images generated")
    parser.add_argument("--sizes", type=int, nargs="+", default=[FULL // 4, FULL])
    parser.add_argument("--sample", type=int, default=2000, help="the eda brightness sample (its default)")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.data:
            images = len(os.listdir(args.data / "train_images"))
            seconds, rss = run(args.data, tmp / "report", args.sample, args.workers)
            report(images, seconds, rss)
            print(f"projected for {FULL} images: {FULL / images * seconds:.0f} s (linear; an overestimate when the "
                  f"brightness sample is capped)")
            return
        from steelinspect.data.synth import generate

        t = time.perf_counter()
        source = generate(tmp / "unique", images=args.unique, seed=0)
        print(f"generated {args.unique} synthetic images in {time.perf_counter() - t:.0f} s")
        results = {}
        for size in args.sizes:
            data = replicate(source, tmp / f"d{size}", size)
            results[size] = run(data, tmp / f"r{size}", args.sample, args.workers)
            report(size, *results[size])
        if FULL not in results:
            size, (seconds, _) = max(results.items())
            print(f"projected for {FULL} images: {FULL / size * seconds:.0f} s (linear; an overestimate when the "
                  f"brightness sample is capped)")
        if len(results) > 1:
            (small, (_, rss_small)), (big, (_, rss_big)) = min(results.items()), max(results.items())
            print(f"peak RSS {rss_small:.0f} MB at {small} images, {rss_big:.0f} MB at {big} images "
                  f"(x{big / small:.1f} images, x{rss_big / rss_small:.2f} memory)")


if __name__ == "__main__":
    main()
