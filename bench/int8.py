"""INT8 speed: ONNX Runtime fp32 against int8 with uint8 activations (U8S8) and int8 activations (S8S8), both
QDQ with per-channel int8 weights and the default --keep-float ends, on the CPU it runs on (named in the output).

    python bench/int8.py [--repeats 5] [--threads N] [--out results.json] [--quick]

Models are freshly initialised (speed does not depend on the weights): UNet-ResNet18 at 256x1600 (batch 1 and 4)
and the VGG classifier at 128x512 (batch 1 and 16); calibrated on 4 synthetic steel images. Each timing is the
median of --repeats calls after one warm-up, the three
variants interleaved call by call (a shared machine's load then falls on all three alike). The accuracy side is the export's own guard (steelinspect export
--int8 prints the validation scores); this measures speed only. --quick: 256x800 UNet, 2 repeats.

results.json: {"cpu", "threads", "rows": [{"model", "size", "batch", "fp32_ms", "u8s8_ms", "s8s8_ms",
"u8s8_speedup", "s8s8_speedup"}]}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_flags, cpu_model, synthetic  # noqa: E402

from steelinspect.data.images import list_images, read_gray  # noqa: E402
from steelinspect.data.transforms import Preprocess  # noqa: E402
from steelinspect.infer.export import export_onnx  # noqa: E402
from steelinspect.infer.quantize import quantize_graph  # noqa: E402
from steelinspect.models.factory import build_model  # noqa: E402
from steelinspect.runs.config import TrainConfig  # noqa: E402
from steelinspect.runs.store import save_model  # noqa: E402



def float_graph(root: Path, task: str, arch: str, outputs: int, size: tuple[int, int]) -> bytes:
    torch.manual_seed(0)
    run_dir = root / arch
    run_dir.mkdir()
    config = TrainConfig(task="segment" if task == "segment" else "binary", data=root, out=run_dir, arch=arch,
                         image_size=size)
    save_model(run_dir, build_model(arch, outputs), config, task, outputs, Preprocess(*size), thresholds=[0.5] * outputs)
    return export_onnx(run_dir).path.read_bytes()


def median_ms(sessions: dict, x: np.ndarray, repeats: int) -> dict[str, float]:
    """Median milliseconds per call of each session, the sessions interleaved call by call so that a shared
    machine's changing load falls on all of them alike."""
    times = {name: [] for name in sessions}
    for name, session in sessions.items():
        session.run(None, {"image": x})  # warm-up
    for _ in range(repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"image": x})
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    images = [read_gray(p) for p in list_images(synthetic(8, seed=3) / "train_images")[:4]]
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    specs = [("segment", "unet_resnet18", 4, (256, 800) if args.quick else (256, 1600), (1, 4)),
             ("binary", "vgg", 1, (128, 512), (1, 16))]
    rows = []
    print(f"CPU: {cpu_model()} ({', '.join(cpu_flags())}), {args.threads} threads, onnxruntime {ort.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for task, arch, outputs, size, batches in specs:
            graph = float_graph(Path(tmp), task, arch, outputs, size)
            prep = Preprocess(*size)
            calib = [prep(img)[None] for img in images]
            sessions = {"fp32": ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])}
            for act in ("u8", "s8"):
                int8, _ = quantize_graph(graph, calib, act, "ends")
                sessions[f"{act}s8"] = ort.InferenceSession(int8, options, providers=["CPUExecutionProvider"])
            for batch in batches:
                x = np.concatenate([calib[i % len(calib)] for i in range(batch)])
                row = {"model": arch, "size": f"{size[0]}x{size[1]}", "batch": batch}
                for name, ms in median_ms(sessions, x, repeats).items():
                    row[f"{name}_ms"] = round(ms, 1)
                for name in ("u8s8", "s8s8"):
                    row[f"{name}_speedup"] = round(row["fp32_ms"] / row[f"{name}_ms"], 2)
                rows.append(row)
                print(f"{arch} {row['size']} batch {batch}: fp32 {row['fp32_ms']} ms, U8S8 {row['u8s8_ms']} ms "
                      f"({row['u8s8_speedup']}x), S8S8 {row['s8s8_ms']} ms ({row['s8s8_speedup']}x)", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_model(), "flags": cpu_flags(), "threads": args.threads,
                                        "repeats": repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
