"""Prediction throughput on several processes: a grid of processes x model threads per process -> images/s, for
`steelinspect predict` on full-size 1600x256 synthetic images, with the CPU model it ran on.

    python bench/predict_scaling.py [--images 64] [--processes 1 2 4] [--threads 1 2] [--segment] [--out grid.json]

Each cell is one real command, timed from start to exit (interpreter start, model loading and the merge
included, as a user waits for it): `--processes 1` is the one-process path with `--threads T`, more processes
are `--processes P --threads T`. Cells with P x T above this machine's cores are left out. The models are freshly
initialised default ones (speed does not depend on the weights; bench/inference.py's fresh_runs): VGG step 1 and
step 2 at 256x512 and, with --segment, UNet-ResNet18 at full size on every image (step 1 passes them all, the
costliest case). Run it on a quiet machine: other work on the cores skews every cell.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_model, synthetic  # noqa: E402
from inference import fresh_runs  # noqa: E402

from steelinspect.infer.shard import cpu_cores  # noqa: E402



def cell(images: Path, runs: dict[str, Path], out: Path, processes: int, threads: int, segment: bool) -> float:
    """Images/s of one command, wall clock."""
    args = [sys.executable, "-m", "steelinspect", "predict", str(images), "--binary", str(runs["binary"]),
            "--multiclass", str(runs["multiclass"]), "--out", str(out / "predictions.csv"), "--threads", str(threads),
            "--processes", str(processes), "--engine", "torch", "--device", "cpu"]
    if segment:
        args += ["--segment", str(runs["segment"]), "--submission", str(out / "submission.csv")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    with (out / "predictions.csv").open() as fh:
        predicted = sum(1 for _ in fh) - 1  # the header
    return predicted / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--segment", action="store_true", help="Also the segmenter (every image).")
    parser.add_argument("--out", type=Path, help="Also write the grid as JSON.")
    args = parser.parse_args()
    cores = cpu_cores()
    images = synthetic(args.images) / "train_images"
    grid: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = fresh_runs(Path(tmp) / "runs")
        for p in args.processes:
            for t in args.threads:
                if p * t > cores:
                    continue
                grid[f"{p}x{t}"] = cell(images, runs, Path(tmp) / f"out-{p}x{t}", p, t, args.segment)
                print(f"processes {p} x threads {t}: {grid[f'{p}x{t}']:.2f} images/s", flush=True)
    result = {"cpu": cpu_model(), "cores": cores, "images": args.images, "segment": args.segment,
              "images_per_s": grid}
    print(f"\n{result['cpu']}, {cores} cores, {args.images} images{' with the segmenter' if args.segment else ''}")
    print("| processes x threads | images/s |\n| --- | ---: |")
    for key, value in grid.items():
        print(f"| {key} | {value:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
