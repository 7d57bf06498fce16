"""Training speed: images/s of one optimiser step (forward, loss, backward, Adam) per architecture.

    python bench/train.py [--size 256x512] [--batch 16] [--batches 6] [--archs vgg resnet18 resnet34]

The batches are preprocessed tensors already in memory, so this is the model's rate alone; bench/loader.py
measures the data loader alone and compares the two.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import train_step_rate  # noqa: E402

from steelinspect.data.transforms import parse_size  # noqa: E402
from steelinspect.models.factory import build_model  # noqa: E402


def train_rate(arch: str, size: tuple[int, int], batch: int, batches: int, device: str = "cpu") -> float:
    """Images/s of `batches` training steps on random grey batches, after one warm-up step."""
    torch.manual_seed(0)
    model = build_model(arch, 4).to(device).train()
    x = torch.randn(batch, 1, *size, device=device)
    y = torch.rand(batch, 4, device=device).round()
    return train_step_rate(model, x, y, F.binary_cross_entropy_with_logits, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--archs", nargs="+", default=["vgg", "resnet18", "resnet34"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    size = parse_size(args.size)
    print(f"training steps at {size[0]}x{size[1]}, batch {args.batch}, {torch.get_num_threads()} torch threads, "
          f"{args.device}")
    for arch in args.archs:
        print(f"  {arch:<10} {train_rate(arch, size, args.batch, args.batches, args.device):7.1f} images/s")


if __name__ == "__main__":
    main()
