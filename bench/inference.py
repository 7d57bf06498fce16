"""Inference speed: plain PyTorch eager (batch 1, like a typical competition kernel) against the project's
default path (batched, decoding in threads ahead of the model, ONNX Runtime on CPU, the segmenter only on images
step 1 calls defective), measured in one run on the same full-size 1600x256 images.

    python bench/inference.py --images 60 --out results.json [--runs RUN_A RUN_B RUN_C] [--memory 100 2000]

Without --runs, freshly initialised models of the default architectures are used (speed does not depend on
the weights): binary and multiclass VGG at 256x512, UNet-ResNet18 at 256x1600; step 1's threshold is set so that
it passes 53% of the images, the share of defect images in the real training set. The plain loop runs every model
on every image and zeroes the masks of the images step 1 calls clean afterwards, as competition kernels did;
"cascade_every_image" is the default path with step 1 passing every image (the worst case for it);
"binary_frame_norm" is step 1 with `--frame-norm 0.5` (each frame's own BatchNorm statistics mixed in). Each row also
measures `--precision bf16` (PyTorch, channels-last, bfloat16 autocast), which needs a CPU with AMX or AVX-512
BF16 to be fast.
MACs per image, the GMAC/s of each path and their share of this CPU's measured peak (with the int8 exports too):
bench/roofline.py, which reuses these paths.
--memory N1 N2 also measures the peak memory of the default cascade path on N1 and N2 images, in child processes.

results.json: {"binary"|"binary_frame_norm"|"multiclass"|"segment"|"cascade"|"cascade_every_image": {"torch_eager_img_s",
"default_img_s", "ratio", "bf16_img_s", "bf16_ratio"}, "segmented_share", "stages_ms": {"decode", "resize", "model", "postprocess", "rle"},
"peak_rss_mb", "memory": {...}}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import synthetic  # noqa: E402

from steelinspect import rle  # noqa: E402
from steelinspect.data.images import list_images, read_gray  # noqa: E402
from steelinspect.data.transforms import Preprocess  # noqa: E402
from steelinspect.infer.cascade import PredictConfig  # noqa: E402
from steelinspect.infer.export import export_onnx  # noqa: E402
from steelinspect.models.factory import build_model  # noqa: E402
from steelinspect.postprocess.masks import PostProcess  # noqa: E402
from steelinspect.runs.config import TrainConfig  # noqa: E402
from steelinspect.runs.store import load_run, save_model  # noqa: E402


DEFECT_SHARE = 6666 / 12568  # images with a defect in the real training set


def fresh_run(run_dir: Path, task: str, head: str, arch: str, outputs: int, size: tuple[int, int],
              frame_norm: float = 0.0) -> Path:
    """A run directory holding an untrained model of `arch` for the train task `task` (its head `head`)."""
    torch.manual_seed(0)
    run_dir.mkdir(parents=True)
    config = TrainConfig(task=task, data=run_dir.parent, out=run_dir, arch=arch, image_size=size,
                         frame_norm=frame_norm)
    params = {"postprocess": PostProcess().to_dict()} if head == "segment" else {
        "thresholds": [0.0] if head == "binary" else [0.5] * 4}
    save_model(run_dir, build_model(arch, outputs, frame_norm=frame_norm).eval(), config, head, outputs,
               Preprocess(*size), epoch=0, **params)
    return run_dir


def fresh_runs(root: Path) -> dict[str, Path]:
    """Run directories holding untrained default models (no training needed to time them). Step 1's threshold is
    set by `pass_share` once the images are known."""
    specs = {"binary": ("binary", "vgg", 1, (256, 512)), "multiclass": ("multilabel", "vgg", 4, (256, 512)),
             "segment": ("segment", "unet_resnet18", 4, (256, 1600))}
    return {name: fresh_run(root / name, name, *spec) for name, spec in specs.items()}


def frame_norm_run(root: Path, size: tuple[int, int]) -> Path:
    """An untrained step 1 like the default one, with --frame-norm 0.5 (models/frame_norm.py): what mixing each
    frame's own BatchNorm statistics in costs at inference (ONNX Runtime folds plain BatchNorm into the
    convolutions; a frame's own statistics it cannot)."""
    return fresh_run(root / "binary_frame_norm", "binary", "binary", "vgg", 1, size, frame_norm=0.5)


def eager(run_dir: Path, paths: list[Path]) -> float:
    """Images/s of the plain loop: read, resize, one image through the model at a time."""
    run = load_run(run_dir)
    model, prep = run.model.eval(), run.preprocess
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            x = torch.from_numpy(prep(image))[None]
            out = torch.sigmoid(model(x))
            if run.head == "segment":
                masks = (out[0] > 0.5).numpy()
                [rle.encode(m) for m in masks]
    return len(paths) / (time.perf_counter() - start)


def default_model(run_dir: Path, paths: list[Path], batch: int, precision: str = "fp32") -> float:
    """Images/s of one model on the default path: batched loader, ONNX Runtime."""
    from steelinspect.infer.engines import make_engine
    from steelinspect.infer.loader import iter_batches
    from steelinspect.postprocess.segmenter import segment_probs, to_full_size

    run = load_run(run_dir)
    engine = make_engine(run, PredictConfig(device="cpu", precision=precision))
    post = PostProcess.from_dict(run.postprocess) if run.head == "segment" else None
    start = time.perf_counter()
    for b in iter_batches(paths, [run.preprocess], batch, workers=2):
        x = b.input(run.preprocess)
        if post is None:
            engine(x)
            continue
        for p in segment_probs(engine, x):
            masks, _ = post(to_full_size(p))
            [rle.encode(m) for m in masks]
    return len(paths) / (time.perf_counter() - start)


def default_cascade(runs: dict[str, Path], paths: list[Path], batch: int, precision: str = "fp32") -> float:
    from steelinspect.infer.segment_predict import PipelineOutputs, predict_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        config = PredictConfig(batch_size=batch, workers=2, device="cpu", engine="auto", precision=precision)
        stats = predict_pipeline(paths, runs["binary"], runs["multiclass"], runs["segment"],
                                 PipelineOutputs(Path(tmp) / "p.csv", Path(tmp) / "s.csv"), config)
    return stats.images_per_s


def eager_cascade(runs: dict[str, Path], paths: list[Path]) -> float:
    """The plain loop over the whole cascade, as competition kernels did: every model on every image, then the
    masks of images step 1 calls clean are emptied."""
    loaded = {k: load_run(v) for k, v in runs.items()}
    threshold = loaded["binary"].thresholds[0]
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            p = torch.sigmoid(loaded["binary"].model(torch.from_numpy(loaded["binary"].preprocess(image))[None]))
            torch.sigmoid(loaded["multiclass"].model(torch.from_numpy(loaded["multiclass"].preprocess(image))[None]))
            seg = torch.sigmoid(loaded["segment"].model(torch.from_numpy(loaded["segment"].preprocess(image))[None]))
            masks = (seg[0] > 0.5).numpy() & (float(p) >= threshold)
            [rle.encode(m) for m in masks]
    return len(paths) / (time.perf_counter() - start)


def step1_probs(binary: Path, paths: list[Path]) -> np.ndarray:
    run = load_run(binary)
    with torch.no_grad():
        return np.array([float(torch.sigmoid(run.model(torch.from_numpy(run.preprocess(read_gray(path)))[None])))
                         for path in paths])


def pass_share(binary: Path, paths: list[Path], share: float) -> None:
    """Set step 1's threshold so that it passes `share` of the images."""
    from steelinspect.runs.store import update_model_params

    update_model_params(binary, thresholds=[float(np.quantile(step1_probs(binary, paths), 1 - share))])


def every_image(runs: dict[str, Path], root: Path) -> dict[str, Path]:
    """The same runs with step 1 passing every image (threshold 0; the ONNX export stays valid)."""
    import shutil

    from steelinspect.runs.store import update_model_params

    binary = Path(shutil.copytree(runs["binary"], root / "binary-every-image"))
    update_model_params(binary, thresholds=[0.0])
    return {**runs, "binary": binary}


def stages(runs: dict[str, Path], paths: list[Path], batch: int) -> dict[str, float]:
    """Milliseconds per image of each stage of the default path."""
    from steelinspect.infer.engines import make_engine
    from steelinspect.postprocess.segmenter import segment_probs, to_full_size

    seg = load_run(runs["segment"])
    engines = {k: make_engine(load_run(v), PredictConfig(device="cpu")) for k, v in runs.items()}
    preps = {k: load_run(v).preprocess for k, v in runs.items()}
    post = PostProcess.from_dict(seg.postprocess)
    t = dict.fromkeys(("decode", "resize", "model", "postprocess", "rle"), 0.0)
    images = []
    for path in paths:
        s = time.perf_counter()
        images.append(read_gray(path))
        t["decode"] += time.perf_counter() - s
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        s = time.perf_counter()
        inputs = {k: np.stack([p(g) for g in chunk]) for k, p in preps.items()}
        t["resize"] += time.perf_counter() - s
        s = time.perf_counter()
        engines["binary"](inputs["binary"])
        engines["multiclass"](inputs["multiclass"])
        probs = segment_probs(engines["segment"], inputs["segment"])
        t["model"] += time.perf_counter() - s
        for p in probs:
            s = time.perf_counter()
            masks, _ = post(to_full_size(p))
            t["postprocess"] += time.perf_counter() - s
            s = time.perf_counter()
            [rle.encode(m) for m in masks]
            t["rle"] += time.perf_counter() - s
    return {k: round(v / len(paths) * 1000, 2) for k, v in t.items()}


# The child reports its own high-water mark from /proc (VmHWM restarts at exec; ru_maxrss would carry over the
# parent's peak from before the fork).
MEMORY_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from steelinspect.infer.cascade import PredictConfig
from steelinspect.infer.segment_predict import PipelineOutputs, predict_pipeline
paths = sorted(Path(sys.argv[1]).iterdir())[: int(sys.argv[2])]
with tempfile.TemporaryDirectory() as tmp:
    stats = predict_pipeline(paths, sys.argv[3], sys.argv[4], sys.argv[5],
                             PipelineOutputs(Path(tmp) / "p.csv", Path(tmp) / "s.csv"),
                             PredictConfig(batch_size=16, workers=2, device="cpu"))
status = Path("/proc/self/status")
if status.is_file():
    line = next(l for l in status.read_text().splitlines() if l.startswith("VmHWM:"))
    peak = int(line.split()[1]) / 1024
else:  # not Linux: includes the parent's peak before the fork
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"images": stats.images, "peak_rss_mb": round(peak, 1), "img_s": round(stats.images_per_s, 2)}))
"""


def memory(runs: dict[str, Path], counts: list[int]) -> dict[str, dict]:
    """{count: {"images", "peak_rss_mb", "img_s"}} of the default cascade path, each in a fresh process."""
    out = {}
    for n in counts:
        data = synthetic(n, seed=2)
        proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(data / "train_images"), str(n),
                               str(runs["binary"]), str(runs["multiclass"]), str(runs["segment"])],
                              capture_output=True, text=True, check=True)
        out[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("results.json"))
    parser.add_argument("--runs", nargs=3, type=Path, metavar=("BINARY", "MULTICLASS", "SEGMENT"))
    parser.add_argument("--memory", nargs="*", type=int, default=[], help="image counts for the memory check")
    args = parser.parse_args()
    paths = list_images(synthetic(args.images, seed=1) / "train_images")
    with tempfile.TemporaryDirectory() as tmp:
        runs = dict(zip(("binary", "multiclass", "segment"), args.runs)) if args.runs else fresh_runs(Path(tmp))
        if args.runs:  # export into copies, never into the user's run directories
            import shutil

            runs = {k: Path(shutil.copytree(v, Path(tmp) / k)) for k, v in runs.items()}
        for run_dir in runs.values():
            export_onnx(run_dir)
        if not args.runs:
            pass_share(runs["binary"], paths, DEFECT_SHARE)
        passed = step1_probs(runs["binary"], paths) >= load_run(runs["binary"]).thresholds[0]
        results = {"segmented_share": round(float(passed.mean()), 3)}
        def row(eager_rate: float, default_rate: float, bf16_rate: float) -> dict:
            return {"torch_eager_img_s": round(eager_rate, 2), "default_img_s": round(default_rate, 2),
                    "ratio": round(default_rate / eager_rate, 2), "bf16_img_s": round(bf16_rate, 2),
                    "bf16_ratio": round(bf16_rate / eager_rate, 2)}

        for name in ("binary", "multiclass", "segment"):
            results[name] = row(eager(runs[name], paths), default_model(runs[name], paths, args.batch),
                                default_model(runs[name], paths, args.batch, "bf16"))
        framed = frame_norm_run(Path(tmp), load_run(runs["binary"]).preprocess.size)
        export_onnx(framed)
        results["binary_frame_norm"] = row(eager(framed, paths), default_model(framed, paths, args.batch),
                                           default_model(framed, paths, args.batch, "bf16"))
        a = eager_cascade(runs, paths)
        results["cascade"] = row(a, default_cascade(runs, paths, args.batch),
                                 default_cascade(runs, paths, args.batch, "bf16"))
        every = every_image(runs, Path(tmp))
        results["cascade_every_image"] = row(a, default_cascade(every, paths, args.batch),
                                             default_cascade(every, paths, args.batch, "bf16"))
        results["stages_ms"] = stages(runs, paths, args.batch)
        results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if args.memory:
            results["memory"] = memory(runs, args.memory)
    results["images"] = len(paths)
    results["threads"] = torch.get_num_threads()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{len(paths)} full-size images, {torch.get_num_threads()} threads")
    print(f"{'':<21}{'torch eager b=1':>16}{'default':>12}{'ratio':>8}{'--precision bf16':>18}{'ratio':>8}")
    for name in ("binary", "binary_frame_norm", "multiclass", "segment", "cascade", "cascade_every_image"):
        r = results[name]
        print(f"{name:<21}{r['torch_eager_img_s']:>13.1f}/s{r['default_img_s']:>10.1f}/s{r['ratio']:>7.2f}x"
              f"{r['bf16_img_s']:>16.1f}/s{r['bf16_ratio']:>7.2f}x")
    plain, framed = results["binary"], results["binary_frame_norm"]
    print(f"step 1 with --frame-norm 0.5 against without: torch eager {framed['torch_eager_img_s'] / plain['torch_eager_img_s']:.2f}x, "
          f"default {framed['default_img_s'] / plain['default_img_s']:.2f}x")
    print(f"step 1 passed {results['segmented_share']:.0%} of the images to the segmenter")
    print("stages, ms per image: " + ", ".join(f"{k} {v}" for k, v in results["stages_ms"].items()))
    print(f"peak RSS {results['peak_rss_mb']} MB")
    for n, m in results.get("memory", {}).items():
        print(f"  cascade over {n:>6} images: peak RSS {m['peak_rss_mb']:7.1f} MB, {m['img_s']:.1f} images/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
