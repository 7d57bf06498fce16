"""Training speed per task and setting: images/s of optimiser steps at fp32, bf16 (and fp16 on CUDA), with
channels-last and torch.compile on or off; then the JPEG decode time, full vs reduced scale.

    nice python bench/train_precision.py [--tasks binary multiclass segment] [--settings fp32 bf16 fp32+cl ...]
        [--batch 8] [--batches 3] [--device cpu]
    nice python bench/train_precision.py --seeded [--images 128] [--epochs 3]   # fp32 vs bf16 final metrics

A setting is a precision with optional `+cl` (channels-last) and `+compile`. binary and multiclass: VGG at
their default 256x512; segment: UNet-ResNet18 on its training crop, 256x512 of the full-height image. Steps
run the training loop's own pieces (train/speed.py: autocast, GradScaler, layout) on an in-memory batch after
one warm-up step (which includes compilation), so this is the model's rate alone (bench/loader.py: the loader).
Prints the CPU model and whether it has bf16 units (AVX-512 BF16 / AMX): without them bf16 is emulated and
slower than fp32.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic, timed_steps, timer  # noqa: E402

from steelinspect.models.factory import build_model  # noqa: E402
from steelinspect.train import speed  # noqa: E402
from steelinspect.train.tasks import make_task  # noqa: E402

# (arch, working size) per task; --size overrides the size (a quick check).
SHAPES = {"binary": ("vgg", (256, 512)), "multiclass": ("vgg", (256, 512)), "segment": ("unet_resnet18", (256, 512))}


def cpu_info() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        text = ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")),
                 platform.processor() or "unknown CPU")
    units = [f for f in ("avx512_bf16", "amx_bf16") if f in text.split()]
    return f"{model}; bf16 units: {', '.join(units) if units else 'none (bf16 emulated)'}"


def rate(task: str, setting: str, batch: int, batches: int, device: torch.device,
         size: tuple[int, int]) -> tuple[float, float]:
    """(images/s of the timed steps, seconds of the warm-up step: compilation with +compile)."""
    precision, *flags = setting.split("+")
    arch = SHAPES[task][0]
    head = make_task("multilabel" if task == "multiclass" else task)
    torch.manual_seed(0)
    model = build_model(arch, head.num_outputs).to(device).train()
    if "cl" in flags:
        speed.channels_last(model)
    net = speed.compiled(model) if "compile" in flags else model
    mixed = speed.Precision(precision, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = speed.to_device(torch.randn(batch, 1, *size), device, "cl" in flags)
    if task == "segment":
        y = (torch.rand(batch, 4, *size) > 0.9).float().to(device)
    else:
        y = torch.rand(batch, head.num_outputs).round()
        head.setup_loss(y.numpy())
        y = y.to(device)

    def step() -> None:
        with mixed.autocast():
            logits = net(x)
        mixed.step(head.loss(logits.float(), y), optimizer)

    warm, seconds = timed_steps(step, batches, device)
    return batch * batches / seconds, warm


def decode_times(repeats: int = 7) -> None:
    """Decode + resize per image, full against reduced scale, interleaved; each image's fastest of `repeats`
    (the least disturbed by other work on a shared machine)."""
    from steelinspect.data.images import decode_gray, resize

    datas = [p.read_bytes() for p in sorted((synthetic(16) / "train_images").iterdir())]
    print(f"JPEG decode + resize of a 1600x256 image (ms per image, one thread, fastest of {repeats}):")
    for size in ((256, 512), (128, 800), (128, 512), (96, 512), (64, 400)):
        fastest = {"full": 0.0, "reduced": 0.0}
        for d in datas:
            times = {"full": [], "reduced": []}
            for _ in range(repeats):
                for name, at_least in (("full", None), ("reduced", size)):
                    t0 = time.perf_counter()
                    resize(decode_gray(d, at_least=at_least), size)
                    times[name].append(time.perf_counter() - t0)
            for name in fastest:
                fastest[name] += min(times[name]) / len(datas) * 1e3
        diff = np.mean([np.abs(resize(decode_gray(d), size).astype(int)
                               - resize(decode_gray(d, at_least=size), size).astype(int)).mean() for d in datas])
        print(f"  {size[0]}x{size[1]:<5} full {fastest['full']:5.2f}  reduced {fastest['reduced']:5.2f}  "
              f"x{fastest['full'] / fastest['reduced']:4.2f}  mean abs diff {diff:.2f} grey levels", flush=True)


def seeded(images: int, epochs: int, device: str, precisions: list[str], size: tuple[int, int] = (64, 128),
           seeds: tuple[int, ...] = (0,)) -> None:
    """The same seeded short run (step 1, VGG at 64x128, synthetic data) at each precision: final metrics (fp32
    evaluation, see train/speed.py) should agree within run-to-run noise."""
    import json
    import tempfile

    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.loop import train

    data = synthetic(images)
    print(f"seeded run: binary, vgg, {size[0]}x{size[1]}, {images} synthetic images, {epochs} epochs, {device}; "
          "seed to seed is the noise a precision's difference is judged against")
    with tempfile.TemporaryDirectory() as tmp:
        for seed, precision in ((s, p) for s in seeds for p in precisions):
            config = TrainConfig(task="binary", data=data, out=Path(tmp) / f"{precision}-{seed}", epochs=epochs,
                                 batch_size=16, image_size=size, arch="vgg", seed=seed, device=device, workers=0,
                                 precision=precision)
            with timer() as t:
                run = train(config, progress=False)
            m = json.loads((run / "metrics.json").read_text())
            print(f"  seed {seed} {precision:<5} {t['seconds']:6.1f} s  " + "  ".join(
                f"{split} loss {m[split]['loss']:.4f} f1 {m[split]['f1']:.3f} auc {m[split]['roc_auc']:.3f}"
                for split in ("val", "test")), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(SHAPES))
    parser.add_argument("--settings", nargs="+", default=["fp32", "bf16", "fp32+cl", "bf16+cl"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", help="HxW for every task instead of the defaults above")
    parser.add_argument("--no-decode", action="store_true")
    parser.add_argument("--seeded", action="store_true", help="only the seeded fp32-vs-bf16 training runs")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="--seeded: one run per seed and precision")
    args = parser.parse_args()
    if args.seeded:
        print(cpu_info())
        size = tuple(int(v) for v in args.size.split("x")) if args.size else (64, 128)
        seeded(args.images, args.epochs, args.device, ["fp32", "bf16"] + (["fp16"] if "cuda" in args.device else []),
               size, tuple(args.seeds))
        return
    device = torch.device(args.device)
    import cv2

    cv2.setNumThreads(1)
    print(f"{cpu_info()}; torch {torch.__version__}, {torch.get_num_threads()} threads, {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"training steps, batch {args.batch}, {args.batches} timed batches after 1 warm-up, best of {args.rounds} "
          "interleaved rounds (images/s):")
    for task in args.tasks:
        arch, size = SHAPES[task]
        size = tuple(int(v) for v in args.size.split("x")) if args.size else size
        best: dict[str, float] = {}
        warm: dict[str, float] = {}
        # Settings interleaved, --rounds times, best rate kept: on a shared machine that is the least noisy.
        for _round in range(args.rounds):
            for setting in args.settings:
                try:
                    value, warm[setting] = rate(task, setting, args.batch, args.batches, device, size)
                except Exception as exc:  # e.g. torch.compile without a working compiler: say so, go on
                    print(f"  {task} {setting} failed: {str(exc).splitlines()[0][:100]}")
                    continue
                best[setting] = max(best.get(setting, 0.0), value)
        base = best.get(args.settings[0])
        for setting, value in best.items():
            ratio = f"x{value / base:4.2f}" if base else ""
            print(f"  {task:<10} {arch:<13} {size[0]}x{size[1]} {setting:<16} {value:7.2f}  {ratio}  "
                  f"(warm-up step {warm[setting]:.0f} s)", flush=True)
    if not args.no_decode:
        decode_times()


if __name__ == "__main__":
    main()
