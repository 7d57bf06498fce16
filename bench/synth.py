"""Synthetic generator speed: images/s and the projected time for the full 12,568-image set.

    python bench/synth.py [--images 500] [--workers N]

Prints the load average too: the machine is often shared, and a busy one slows every worker.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2

from steelinspect.data.synth import FULL_SIZE, SynthConfig, _write_one, generate_from_config


def cpu_ms_per_image(folder: Path, images: int = 50) -> float:
    """CPU time of one image (render, JPEG, RLE) in this process: unlike wall time, hardly moved by other
    programs sharing the machine."""
    cv2.setNumThreads(1)
    start = time.process_time()
    for index in range(images):
        _write_one((1, index, folder, SynthConfig().jpeg_quality))
    return (time.process_time() - start) / images * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args()
    config = SynthConfig(images=args.images, seed=0, workers=args.workers)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_from_config(Path(tmp) / "d", config)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (Path(tmp) / "d" / "train_images").iterdir())
        cpu_ms = cpu_ms_per_image(Path(tmp))
    rate = args.images / seconds
    print(
        f"synth: {args.images} images in {seconds:.1f} s = {rate:.1f} images/s "
        f"({args.workers or os.cpu_count()} workers, {os.cpu_count()} cores, load average {load:.1f} before the run); "
        f"{size / args.images / 1024:.0f} KiB/image; "
        f"full {FULL_SIZE}-image set projected {FULL_SIZE / rate / 60:.1f} min"
    )
    cores = os.cpu_count() or 1
    print(
        f"       {cpu_ms:.1f} ms CPU per image; on {cores} idle cores that is {cores * 1000 / cpu_ms:.0f} images/s "
        f"and {FULL_SIZE * cpu_ms / 1000 / cores / 60:.1f} min for the full set"
    )


if __name__ == "__main__":
    main()
