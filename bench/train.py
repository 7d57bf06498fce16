"""Training speed (images/s) per architecture, and the data loader's own speed against it.

    python bench/train.py [--size 256x512] [--batches 6] [--archs vgg resnet18 resnet34] [--workers 2]

The loader must keep up with training: its images/s should be at least 3x the fastest training rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic, timer  # noqa: E402

from steelinspect.data.dataset import Augment, ImageDataset  # noqa: E402
from steelinspect.data.master import build_master  # noqa: E402
from steelinspect.data.transforms import Preprocess, parse_size  # noqa: E402
from steelinspect.models.factory import build_model  # noqa: E402


def train_rate(arch: str, size: tuple[int, int], batch: int, batches: int) -> float:
    torch.manual_seed(0)
    model = build_model(arch, 4)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(batch, 1, *size), torch.rand(batch, 4).round()
    for i in range(batches + 1):
        if i == 1:  # the first step warms up allocators and kernels
            with timer() as t:
                for _ in range(batches):
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            return batch * batches / t["seconds"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 0.0


def loader_rate(data: Path, size: tuple[int, int], batch: int, workers: int) -> float:
    master = build_master(data)
    ds = ImageDataset(data / "train_images", master.ImageId.tolist(), master.Defect.to_numpy()[:, None],
                      Preprocess(*size), Augment(), seed=0)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=True)
    with timer() as t:
        n = sum(len(x) for x, _, _ in loader)
    return n / t["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=["vgg", "resnet18", "resnet34"])
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    size = parse_size(args.size)
    print(f"training at {size[0]}x{size[1]}, batch {args.batch}, {torch.get_num_threads()} threads")
    rates = {}
    for arch in args.archs:
        rates[arch] = train_rate(arch, size, args.batch, args.batches)
        print(f"  {arch:<10} {rates[arch]:7.1f} images/s (train step)")
    loader = loader_rate(synthetic(args.images), size, args.batch, args.workers)
    fastest = max(rates.values())
    print(f"  loader     {loader:7.1f} images/s (decode + augment + resize, {args.workers} workers)")
    print(f"  loader / fastest training rate: x{loader / fastest:.1f} (target >= 3)")


if __name__ == "__main__":
    main()
