"""The training data loader's speed on its own (decode + augment + resize + normalise), against training.

    python bench/loader.py [--size 256x512] [--batch 16] [--workers 2] [--images 300] [--arch vgg]

The loader must keep up with training: its images/s should be at least 3x the training rate of --arch
(measured here with bench/train.py's train_rate, the model alone on in-memory batches).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic, timer  # noqa: E402
from train import train_rate  # noqa: E402

from steelinspect.data.dataset import Augment, EpochSampler, ImageDataset  # noqa: E402
from steelinspect.data.master import build_master  # noqa: E402
from steelinspect.data.transforms import Preprocess, parse_size  # noqa: E402


def loader_rate(data: Path, size: tuple[int, int], batch: int, workers: int) -> float:
    """Images/s of one epoch through the training DataLoader (augmentation on), nothing consuming the batches."""
    master = build_master(data)
    dataset = ImageDataset(data / "train_images", master.ImageId.tolist(), master.Defect.to_numpy("float32")[:, None],
                           Preprocess(*size), Augment(), seed=0)
    loader = DataLoader(dataset, batch_size=batch, sampler=EpochSampler(len(dataset), batch, 0, True),
                        num_workers=workers)
    with timer() as t:
        n = sum(len(x) for x, _, _ in loader)
    return n / t["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--arch", default="vgg", help="the training rate to compare with (vgg is the fastest)")
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    size = parse_size(args.size)
    data = synthetic(args.images)
    loader = loader_rate(data, size, args.batch, args.workers)
    training = train_rate(args.arch, size, args.batch, args.batches)
    print(f"at {size[0]}x{size[1]}, batch {args.batch}, {torch.get_num_threads()} torch threads:")
    print(f"  loader   {loader:7.1f} images/s ({args.images} images: decode + augment + resize, {args.workers} workers)")
    print(f"  training {training:7.1f} images/s ({args.arch}, model alone)")
    print(f"  loader / training: x{loader / training:.1f} (target >= 3)")


if __name__ == "__main__":
    main()
