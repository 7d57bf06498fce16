"""Segmentation speed: UNet training and prediction images/s at full size, and what the CPU-side steps cost.

    python bench/segment.py [--archs unet_resnet18 unet_resnet34] [--crop 256x512] [--batch 8] [--device cpu]

- train:   one optimiser step (forward, BCE + Dice, backward, Adam) on in-memory crops (the model's rate alone)
           and the same at the whole 256x1600 image;
- predict: forward on whole 256x1600 images, without and with flip TTA (3 passes);
- CPU side, per image: loading a training sample (JPEG + 4 RLE masks + crop), post-processing (threshold,
  components, min areas, boxes) + RLE encoding, and scoring every post-processing candidate for tuning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic, timer, train_step_rate  # noqa: E402

from steelinspect import rle  # noqa: E402
from steelinspect.data.transforms import Preprocess, parse_size  # noqa: E402
from steelinspect.models.factory import build_model  # noqa: E402
from steelinspect.train.segment import bce_dice_loss  # noqa: E402

FULL = (256, 1600)


def train_rate(arch: str, size: tuple[int, int], batch: int, batches: int, device: str) -> float:
    torch.manual_seed(0)
    model = build_model(arch, 4).to(device).train()
    x = torch.randn(batch, 1, *size, device=device)
    y = (torch.rand(batch, 4, *size, device=device) > 0.95).to(torch.uint8)
    return train_step_rate(model, x, y, bce_dice_loss, batches)


@torch.inference_mode()
def predict_rate(arch: str, batch: int, batches: int, device: str, tta: bool) -> float:
    from steelinspect.postprocess.segmenter import segment_probs

    model = build_model(arch, 4).to(device).eval()

    def logits(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    x = np.random.default_rng(0).normal(size=(batch, 1, *FULL)).astype(np.float32)
    segment_probs(logits, x, tta)
    with timer() as t:
        for _ in range(batches):
            segment_probs(logits, x, tta)
    return batch * batches / t["seconds"]


def cpu_side(images: int) -> dict[str, float]:
    """ms per image of the CPU-only steps, on realistic (smoothed) probability maps."""
    import cv2

    from steelinspect.data.master import build_master
    from steelinspect.data.seg_dataset import SegAugment, SegmentDataset, samples_from_master
    from steelinspect.postprocess.grid import PostprocessGrid
    from steelinspect.postprocess.masks import PostProcess

    data = synthetic(images)
    master = build_master(data)
    dataset = SegmentDataset(data / "train_images", samples_from_master(master), Preprocess(*FULL), (384, 800), SegAugment())
    with timer() as t:
        for i in range(len(dataset)):
            dataset[i]
    out = {"load a training crop": t["seconds"] / len(dataset) * 1e3}

    rng = np.random.default_rng(0)
    probs = []
    for _ in range(8):
        noise = rng.random((4, *FULL)).astype(np.float32)
        probs.append(np.stack([cv2.GaussianBlur(p, (0, 0), 12) for p in noise]) * 4 - 1.5)
    probs = [np.clip(p, 0, 1) for p in probs]
    truth = [p > 0.55 for p in probs[::-1]]
    post = PostProcess()
    with timer() as t:
        for p in probs:
            masks, _ = post(p)
            [rle.encode(m) for m in masks]
    out["post-process + RLE"] = t["seconds"] / len(probs) * 1e3
    grid = PostprocessGrid()
    with timer() as t:
        for p, y in zip(probs, truth):
            grid.score_image(p, y)
    out[f"score {np.prod(grid.shape[1:])} candidates x 4 classes"] = t["seconds"] / len(probs) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["unet_resnet18", "unet_resnet34"])
    parser.add_argument("--crop", default="256x512", help="training crop HxW")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=48, help="synthetic images for the CPU-side timings")
    args = parser.parse_args()
    crop = parse_size(args.crop)
    print(f"segmentation on {args.device}, {torch.get_num_threads()} torch threads, batch {args.batch}")
    for arch in args.archs:
        rates = {
            f"train {crop[0]}x{crop[1]} crops": train_rate(arch, crop, args.batch, args.batches, args.device),
            "train 256x1600 whole": train_rate(arch, FULL, args.batch, args.batches, args.device),
            "predict 256x1600": predict_rate(arch, args.batch, args.batches, args.device, tta=False),
            "predict 256x1600 + flip TTA": predict_rate(arch, args.batch, args.batches, args.device, tta=True),
        }
        for name, rate in rates.items():
            print(f"  {arch:<14} {name:<30} {rate:8.1f} images/s")
    print("CPU side, ms per image:")
    for name, ms in cpu_side(args.images).items():
        print(f"  {name:<36} {ms:8.1f}")


if __name__ == "__main__":
    main()
