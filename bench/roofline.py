"""Roofline of inference on this CPU: multiply-accumulates per image of each model (counted by forward hooks,
steelinspect.models.macs), the GMAC/s each path achieves end to end (reading and resizing the JPEG, the model, and
for the segmenter post-processing and RLE included), and its share of this machine's peak, measured in the same
process by a microbenchmark:

- fp32: torch matmul 2048^3, torch conv 3x3 64->64 on 128x400 (channels-last), ONNX Runtime MatMul 2048^3;
- bf16: torch matmul 512^3 in bfloat16 (fast only with AVX-512 BF16 or AMX);
- int8: ONNX Runtime MatMulInteger 2048^3 (uint8 x int8, the U8S8 kernel the QDQ models use) and
  torch._int_mm 512^3 (int8 x int8 -> int32; a slow fallback on CPUs without VNNI/AMX).
fp32 paths are compared with the best fp32 ceiling, int8 paths with the best int8 one.

    python bench/roofline.py [--images 8] [--runs BINARY MULTICLASS SEGMENT] [--calibration 8] [--out r.json]

Per model (freshly initialised, speed does not depend on the weights): VGG at 256x512 and UNet-ResNet18 at
256x1600, paths "eager" (plain PyTorch, batch 1), "default" (batched loader, ONNX Runtime fp32) and "int8"
(the same with model.int8.onnx; here quantized without the accuracy guard, weights being random).
With --runs (trained runs; copied, never written to): the cascade row. Each run gets model.onnx and a guarded
model.int8.onnx (steelinspect's export_int8, calibrated on --calibration validation images; the tolerance is opened
so the numbers are reported even when the guard would refuse), then the plain eager loop, the default path on fp32
ONNX and the default path with the int8 exports run the whole cascade on the same images. The issue's criterion:
the int8 cascade at 5x the plain loop, with int8 Dice within 0.003 and F1 within 0.01 of float.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_model, synthetic  # noqa: E402
from inference import (  # noqa: E402
    default_cascade, default_model, eager, eager_cascade, every_image, fresh_runs, step1_probs)

from steelinspect.data.images import list_images, read_gray  # noqa: E402
from steelinspect.infer.config import Int8Config  # noqa: E402
from steelinspect.infer.export import export_onnx, file_sha256  # noqa: E402
from steelinspect.infer.quantize import export_int8, int8_path, quantize_graph  # noqa: E402
from steelinspect.models.macs import count_macs  # noqa: E402
from steelinspect.runs.store import load_run, update_model_params  # noqa: E402

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
CRITERION = {"speedup": 5.0, "dice_kaggle": 0.003, "f1": 0.01, "macro_f1": 0.01}


def cpu_flags() -> dict[str, bool]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return {f: f in flags for f in FLAGS}


def best_rate(fn, macs: float, repeats: int = 3) -> float:
    """GMAC/s of the fastest of `repeats` calls after one warm-up."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return macs / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ort_matmul(n: int, integer: bool):
    """A one-node ONNX Runtime session: MatMul (fp32) or MatMulInteger (uint8 x int8 -> int32) of n x n by n x n."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        a = rng.integers(0, 255, (n, n), dtype=np.uint8)
        b = rng.integers(-127, 127, (n, n), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type = y_type = TensorProto.FLOAT
    graph = helper.make_graph([node], "mm", [helper.make_tensor_value_info("a", a_type, [n, n])],
                              [helper.make_tensor_value_info("y", y_type, [n, n])], [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)
    return lambda: session.run(None, {"a": a})


def peaks(n: int = 2048) -> dict[str, float]:
    """GMAC/s ceilings of this machine, measured now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = {"torch_fp32_matmul": best_rate(lambda: a @ b, n ** 3)}
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 64, 128, 400).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out["torch_fp32_conv3x3"] = best_rate(lambda: conv(x), 64 * 64 * 9 * 128 * 400)
    out["ort_fp32_matmul"] = best_rate(ort_matmul(n, False), n ** 3)
    # bf16 and torch's int8 matmul fall back to slow kernels without AVX-512 BF16 / AMX / VNNI (0.3 GMAC/s on the
    # AVX2 EPYC): a 512^3 product keeps them to a second there and is large enough where they are fast.
    s = 512
    ab, bb = a[:s, :s].bfloat16(), b[:s, :s].bfloat16()
    out["torch_bf16_matmul"] = best_rate(lambda: ab @ bb, s ** 3)
    out["ort_u8s8_matmulinteger"] = best_rate(ort_matmul(n, True), n ** 3)
    ai, bi = torch.randint(-127, 127, (s, s), dtype=torch.int8), torch.randint(-127, 127, (s, s), dtype=torch.int8)
    try:
        out["torch_int8_int_mm"] = best_rate(lambda: torch._int_mm(ai, bi), s ** 3)
    except (RuntimeError, AttributeError):  # not built for this CPU / this torch
        pass
    return {k: round(v, 1) for k, v in out.items()}


def write_unguarded_int8(run_dir: Path, paths: list[Path]) -> None:
    """model.int8.onnx of a freshly initialised run, vouched for in model.pt so the default path takes it, without
    the accuracy guard (random weights have no accuracy to guard). Speed only."""
    run = load_run(run_dir)
    calib = [run.preprocess(read_gray(p))[None] for p in paths[:4]]
    graph, _ = quantize_graph((run_dir / "model.onnx").read_bytes(), calib, "u8", "ends")
    int8_path(run_dir).write_bytes(graph)
    update_model_params(run_dir, int8={"sha256": file_sha256(int8_path(run_dir)), "weights_id": run.weights_id})


def model_rows(root: Path, paths: list[Path], batch: int, ceilings: dict) -> list[dict]:
    runs = fresh_runs(root)
    rows = []
    for name in ("binary", "segment"):
        run_dir = runs[name]
        run = load_run(run_dir)
        h, w = run.preprocess.height, run.preprocess.width
        macs = count_macs(run.model, (1, 1, h, w)).total
        export_onnx(run_dir)
        eager(run_dir, paths[:1])  # warm-up: the first call sets up kernels, which 8 images would not amortise
        rates = {"eager fp32 (torch, batch 1)": eager(run_dir, paths),
                 "default fp32 (ONNX Runtime)": default_model(run_dir, paths, batch)}
        write_unguarded_int8(run_dir, paths)
        rates["default int8 (ONNX Runtime U8S8)"] = default_model(run_dir, paths, batch)
        for path, img_s in rates.items():
            peak = ceilings["int8"] if "int8" in path else ceilings["fp32"]
            gmac_s = macs * img_s / 1e9
            rows.append({"model": f"{run.arch} {h}x{w}", "macs_per_image": macs, "path": path,
                         "img_s": round(img_s, 2), "gmac_s": round(gmac_s, 1),
                         "pct_of_peak": round(100 * gmac_s / peak, 1)})
            print(f"{rows[-1]['model']:<26}{macs / 1e9:>7.2f} GMAC  {path:<34}{img_s:>7.2f} img/s"
                  f"{gmac_s:>8.1f} GMAC/s {rows[-1]['pct_of_peak']:>6.1f}% of peak", flush=True)
    return rows


def cascade_row(given: list[Path], root: Path, paths: list[Path], batch: int, calibration: int) -> dict:
    names = ("binary", "multiclass", "segment")
    runs = {k: Path(shutil.copytree(v, root / f"cascade-{k}")) for k, v in zip(names, given)}
    macs = {}
    guard = {}
    for name, run_dir in runs.items():
        run = load_run(run_dir)
        macs[name] = count_macs(run.model, (1, 1, run.preprocess.height, run.preprocess.width)).total
        export_onnx(run_dir)
    share = float((step1_probs(runs["binary"], paths) >= load_run(runs["binary"]).thresholds[0]).mean())
    eager_cascade(runs, paths[:1])  # warm-up, as for the single models
    out = {"eager_img_s": eager_cascade(runs, paths), "default_fp32_img_s": default_cascade(runs, paths, batch)}
    for name, run_dir in runs.items():
        # Tolerance opened to 1: the bench reports the deltas against the criterion itself.
        report = export_int8(run_dir, Int8Config(calibration=calibration, tolerance_f1=1.0, tolerance_dice=1.0))
        guard[name] = {"metric": report.metric, "float": round(report.float_score, 4),
                       "int8": round(report.int8_score, 4), "delta": round(report.delta, 4),
                       "images": report.images, "within": report.delta >= -CRITERION[report.metric]}
        print(f"  int8 {name}: {report.metric} float {report.float_score:.4f} -> int8 {report.int8_score:.4f} "
              f"({report.delta:+.4f}) on {report.images} validation images", flush=True)
    out["default_int8_img_s"] = default_cascade(runs, paths, batch)
    # The worst case: step 1 passing every image to the segmenter (the plain loop runs it on every image anyway).
    out["default_int8_every_image_img_s"] = default_cascade(every_image(runs, root), paths, batch)
    cascade_macs = macs["binary"] + macs["multiclass"] + share * macs["segment"]
    out = {k: round(v, 2) for k, v in out.items()}
    out.update({"segmented_share": round(share, 3), "macs_per_image": int(cascade_macs),
                "sizes": {k: "x".join(map(str, load_run(v).preprocess.size)) for k, v in runs.items()},
                "int8_vs_eager": round(out["default_int8_img_s"] / out["eager_img_s"], 2),
                "fp32_vs_eager": round(out["default_fp32_img_s"] / out["eager_img_s"], 2),
                "int8_every_image_vs_eager": round(out["default_int8_every_image_img_s"] / out["eager_img_s"], 2),
                "guard": guard})
    out["criterion_met"] = out["int8_vs_eager"] >= CRITERION["speedup"] and all(g["within"] for g in guard.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", nargs=3, type=Path, metavar=("BINARY", "MULTICLASS", "SEGMENT"))
    parser.add_argument("--calibration", type=int, default=8, help="validation images calibrating each int8 export")
    parser.add_argument("--skip-models", action="store_true", help="only the peaks and the cascade row")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    flags = cpu_flags()
    shown = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items())
    print(f"CPU: {cpu_model()}; {shown}; "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible", flush=True)
    measured = peaks()
    print("peaks, GMAC/s: " + ", ".join(f"{k} {v}" for k, v in measured.items()), flush=True)
    fp32 = ("torch_fp32_matmul", "torch_fp32_conv3x3", "ort_fp32_matmul")
    ceilings = {"fp32": max(measured[k] for k in fp32),
                "int8": max(v for k, v in measured.items() if "int" in k)}
    paths = list_images(synthetic(args.images, seed=1) / "train_images")
    results = {"cpu": cpu_model(), "flags": flags, "threads": torch.get_num_threads(), "images": len(paths),
               "peaks_gmac_s": measured, "ceilings_gmac_s": ceilings}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_models:
            results["models"] = model_rows(Path(tmp), paths, args.batch, ceilings)
        if args.runs:
            c = cascade_row(args.runs, Path(tmp), paths, args.batch, args.calibration)
            results["cascade"] = c
            print(f"cascade ({', '.join(f'{k} {v}' for k, v in c['sizes'].items())}; step 1 passed "
                  f"{c['segmented_share']:.0%}; {c['macs_per_image'] / 1e9:.2f} GMAC/image): eager {c['eager_img_s']} "
                  f"img/s, default fp32 {c['default_fp32_img_s']} ({c['fp32_vs_eager']}x), default int8 "
                  f"{c['default_int8_img_s']} ({c['int8_vs_eager']}x), default int8 with step 1 passing every image "
                  f"{c['default_int8_every_image_img_s']} ({c['int8_every_image_vs_eager']}x); "
                  f"criterion (5x, Dice -0.003, F1 -0.01) "
                  f"{'met' if c['criterion_met'] else 'NOT met'}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
