"""Rare classes: step 2 (the multi-label head, full protocol) and the segmenter under each --sampler and --loss.

    python bench/rare_classes.py [--images 1200] [--holdout 1200] [--size 128x416] [--epochs 4]
                                 [--variants natural:bce balanced:bce natural:focal balanced:focal
                                             natural:bce:tile256@256x1600 balanced:focal:paste0.5
                                             balanced:focal:prior balanced:focal:warmup0 natural:bce:warmup0:mask0:f1 ...]
                                 [--ensembles balanced:focal+balanced:focal:tile256@256x1600 ...]
                                 [--segment] [--seg-images 400] [--seg-size 128x800] [--seg-epochs 3]
                                 [--json out.json]

Every variant trains on the same synthetic set (data/synth.py, the real label mix, seed 0) with the same seed,
epochs and image size, tunes its decision parameters on its own validation split as `train` does, and is scored
on a held-out synthetic set generated with another seed (1): per class step 2 F1 and macro F1 (on the held-out
defect images), and, with --segment, the segmenter's Dice on the held-out images having each class (with the
post-processing tuned on validation) and their macro. --ensembles combines step 2 variants (`steelinspect
ensemble`: probabilities averaged, thresholds tuned on the validation split they share) and scores the ensemble
the same way; its members are trained here or found finished under --out. These are synthetic-data numbers: they say which setting
helps rare classes here, not what the real Severstal set would score.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_model, synthetic  # noqa: E402

from steelinspect.data.transforms import parse_size  # noqa: E402
from steelinspect.runs.config import TrainConfig  # noqa: E402
from steelinspect.train.api import evaluate, train  # noqa: E402

STEP2_VARIANTS = ["natural:bce", "balanced:bce", "natural:focal", "balanced:focal"]
SEGMENT_VARIANTS = ["natural:bce_dice", "balanced:bce_dice", "natural:lovasz", "balanced:lovasz"]



def defect_subset(source: Path, out: Path, limit: int) -> Path:
    """A DATA_DIR of the first `limit` defect images of `source` (links, not copies): the segmenter's held-out
    set, where Dice on the images having a class is what is measured and clean images would only cost time."""
    from steelinspect.data.labels import read_labels

    if (out / "train.csv").is_file():
        return out
    labels = read_labels(source / "train.csv")
    ids = sorted(labels.ImageId.unique())[:limit]
    (out / "train_images").mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        link = out / "train_images" / image_id
        if not link.exists():
            link.symlink_to((source / "train_images" / image_id).resolve())
    rows = labels[labels.ImageId.isin(ids)][["ImageId", "ClassId", "EncodedPixels"]]
    rows.to_csv(out / "train.csv", index=False)
    return out


def variant_dir(task: str, variant: str, root: Path, arch: str | None) -> tuple[Path, list[str]]:
    """Where a variant's run goes under --out (the default archs keep their old folders), and the arch suffix."""
    other_arch = [arch] if arch not in (None, "vgg", "unet_resnet18") else []
    return root / "-".join([task, *variant.split(":"), *other_arch]), other_arch


def run_variant(task: str, variant: str, data: Path, holdout: Path, root: Path, **settings) -> dict:
    """Train one variant (or reuse its finished run under --out) and score it on the held-out set. A variant is
    SAMPLER:LOSS, then optionally :tileW@HxW (classifiers: --tile-width W at --image-size HxW instead of --size),
    :pasteP (--paste P; the segmenter pastes 0.5 unless told :paste0), :warmupE (--warmup E; step 2 warms up over 1
    epoch unless told :warmup0), :prior (classifiers: --head-prior), :maskW (classifiers: --mask-aux W), :classesCCC
    (step 2: --mask-classes, as :classes1234), :alphaA (--focal-alpha A) and :breakeven or :f1 (step 2:
    --rare-threshold). Anything not named is train's default (step 2's is :mask2:classes234:breakeven)."""
    sampler, loss, *extras = variant.split(":")
    out, other_arch = variant_dir(task, variant, root, settings.get("arch"))
    for extra in extras:
        if extra.startswith("tile"):
            width, size = extra.removeprefix("tile").split("@")
            settings = {**settings, "tile_width": int(width), "image_size": parse_size(size)}
        elif extra.startswith("paste"):
            settings = {**settings, "paste": float(extra.removeprefix("paste"))}
        elif extra.startswith("warmup"):
            settings = {**settings, "warmup": float(extra.removeprefix("warmup"))}
        elif extra == "prior":
            settings = {**settings, "head_prior": True}
        elif extra.startswith("mask"):
            settings = {**settings, "mask_aux": float(extra.removeprefix("mask"))}
        elif extra.startswith("classes"):
            settings = {**settings, "mask_classes": tuple(int(c) for c in extra.removeprefix("classes"))}
        elif extra.startswith("alpha"):
            settings = {**settings, "focal_alpha": float(extra.removeprefix("alpha"))}
        elif extra in ("breakeven", "f1"):
            settings = {**settings, "rare_threshold": "break-even" if extra == "breakeven" else "f1"}
        else:
            raise SystemExit(f"variant {variant!r}: {extra!r} is none of tileW@HxW, pasteP, warmupE, prior, maskW, "
                             "classesCCC, alphaA, breakeven, f1")
    scored = out / "holdout.json"
    if scored.is_file():
        return json.loads(scored.read_text())
    if out.exists() and not (out / "metrics.json").is_file():
        # Another bench process is training it (several may share --out to use more cores): skip it here.
        return None
    config = TrainConfig(task=task, data=data, out=out, sampler=sampler, loss=loss, **settings)
    start = time.perf_counter()
    if not (out / "metrics.json").is_file():
        train(config, progress=False)
    seconds = time.perf_counter() - start
    held = evaluate(out, holdout, device=settings.get("device", "cpu"), workers=settings.get("workers", 0))["all"]
    result = _summary(task, ":".join([variant, *other_arch]), held, json.loads((out / "metrics.json").read_text())["test"], seconds)
    scored.write_text(json.dumps(result, indent=1))
    return result


def run_ensemble(members: list[str], holdout: Path, root: Path, **settings) -> dict | None:
    """Step 2 variants made one ensemble folder (tuning/ensemble.py) and scored on the held-out set like a variant;
    None while a member is unfinished."""
    from steelinspect.tuning.ensemble import combine_runs

    name = "+".join(members)
    dirs = [variant_dir("multiclass", m, root, settings.get("arch"))[0] for m in members]
    out = root / ("ensemble-" + name.replace(":", "-").replace("+", "_"))
    scored = out / "holdout.json"
    if scored.is_file():
        return json.loads(scored.read_text())
    if not all((d / "metrics.json").is_file() for d in dirs):
        return None
    device, workers = settings.get("device", "cpu"), settings.get("workers", 0)
    start = time.perf_counter()
    combine_runs(dirs, out, device=device, workers=workers)
    held = evaluate(out, holdout, device=device, workers=workers)["all"]
    seconds = time.perf_counter() - start  # combining and scoring; the members' training is in their rows
    result = _summary("multiclass", name, held, json.loads((out / "metrics.json").read_text())["test"], seconds)
    scored.write_text(json.dumps(result, indent=1))
    return result


def _summary(task: str, variant: str, held: dict, in_split: dict, seconds: float) -> dict:
    if task == "segment":
        per_class = {c: held["dice_positive_per_class"][c] for c in "1234"}
        present = [v for v in per_class.values() if v is not None]
        return {"variant": variant, "per_class": per_class, "macro": sum(present) / len(present),
                "positives": held["positives_per_class"], "dice_kaggle": held["dice_kaggle"],
                "split_test_dice_kaggle": in_split["dice_kaggle"], "train_seconds": round(seconds)}
    per_class = {c: held["per_class"][c]["f1"] for c in "1234"}
    return {"variant": variant, "per_class": per_class, "macro": sum(per_class.values()) / 4,
            "roc_auc": {c: held["per_class"][c]["roc_auc"] for c in "1234"},
            "support": {c: held["per_class"][c]["support"] for c in "1234"},
            "chance": {c: held["per_class"][c]["chance_f1"] for c in "1234"},
            "split_test_per_class": {c: in_split["per_class"][c]["f1"] for c in "1234"},
            "thresholds": held["thresholds"], "train_seconds": round(seconds)}


def table(title: str, rows: list[dict], metric: str) -> str:
    lines = [title, f"  {'variant':<30} {'class 1':>8} {'class 2':>8} {'class 3':>8} {'class 4':>8} {'macro':>8}"
             f" {metric:>12} {'train s':>8}"]
    for r in rows:
        cells = " ".join("       –" if r["per_class"][c] is None else f"{r['per_class'][c]:8.3f}" for c in "1234")
        extra = r.get("dice_kaggle")
        extra = f"{extra:12.3f}" if extra is not None else f"{sum(r['split_test_per_class'].values()) / 4:12.3f}"
        lines.append(f"  {r['variant']:<30} {cells} {r['macro']:8.3f} {extra} {r['train_seconds']:8d}")
    chance = next((r["chance"] for r in rows if r.get("chance")), None)  # one held-out set: the same for all
    if chance:
        cells = " ".join(f"{chance[c]:8.3f}" for c in "1234")
        lines.append(f"  {'(naming it on every image)':<30} {cells} {sum(chance.values()) / 4:8.3f}")
    return "\n".join(lines)


def auc_table(rows: list[dict]) -> str:
    """Step 2's held-out ROC AUC per class: near 0.5 the model cannot rank the class at all (more data or a
    better look is needed); high with a low F1 it ranks the class but its tuned threshold misses."""
    lines = ["step 2 ROC AUC per class on the held-out set (0.5: no better than chance)",
             f"  {'variant':<30} {'class 1':>8} {'class 2':>8} {'class 3':>8} {'class 4':>8}"]
    for r in rows:
        auc = r.get("roc_auc") or {}  # results cached by an older bench have none
        lines.append(f"  {r['variant']:<30} " + " ".join(
            "       –" if auc.get(c) is None else f"{auc[c]:8.3f}" for c in "1234"))
    return "\n".join(lines)


def run_variants(task: str, variants: list[str], data: Path, holdout: Path, root: Path, metric: str,
                 collected: list, save, start: float, **settings) -> None:
    """run_variant for each variant, each result printed, added to `collected` and saved (`save()`) as it comes."""
    for variant in variants:
        result = run_variant(task, variant, data, holdout, root, **settings)
        if result is None:
            print(f"  {variant}: being trained by another process, skipped", flush=True)
            continue
        collected.append(result)
        print(f"  {variant}: {metric} {result['macro']:.3f} {result['per_class']} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1200, help="synthetic training set (seed 0)")
    parser.add_argument("--holdout", type=int, default=1200, help="held-out synthetic set (seed 1)")
    parser.add_argument("--size", default="128x416")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="the training set's seed (the held-out set's is seed + 1)")
    parser.add_argument("--run-seed", type=int, default=None, help="the runs' --seed (splits, sampling, "
                        "initialisation); default --seed")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (the runs' --device)")
    parser.add_argument("--arch", default="vgg", help="step 2's --arch (vgg, resnet18, resnet34, resnet50, resnext50)")
    parser.add_argument("--variants", nargs="*", default=STEP2_VARIANTS, help="SAMPLER:LOSS[:tileW@HxW][:pasteP]"
                        "[:warmupE][:prior][:maskW][:classesCCC][:alphaA][:breakeven|:f1] for step 2 (tiles: "
                        "--tile-width W at --image-size HxW; pasteP: --paste P; warmupE: --warmup E; prior: "
                        "--head-prior; maskW: --mask-aux W; classesCCC: --mask-classes C,C,C; alphaA: --focal-alpha A; "
                        "breakeven, f1: --rare-threshold); what is not named is train's default")
    parser.add_argument("--ensembles", nargs="*", default=[], help="VARIANT+VARIANT[+...]: step 2 variants combined "
                        "by `steelinspect ensemble` (trained here or finished under --out) and scored as one")
    parser.add_argument("--segment", action="store_true", help="also the segmenter (minutes per variant)")
    parser.add_argument("--seg-variants", nargs="*", default=SEGMENT_VARIANTS)
    parser.add_argument("--seg-images", type=int, default=400, help="segmenter training set (seed 0)")
    parser.add_argument("--seg-holdout", type=int, default=200, help="held-out defect images for the segmenter")
    parser.add_argument("--seg-size", default="128x800")
    parser.add_argument("--seg-crop", default="192..384")
    parser.add_argument("--seg-epochs", type=int, default=3)
    parser.add_argument("--seg-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder); "
                        "finished variants found there are reused, so several processes may share it")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="rare-classes-"))
    threads = torch.get_num_threads()
    header = (f"CPU: {cpu_model()}, {os.cpu_count()} cores visible, {threads} torch threads; "
              f"torch {torch.__version__}")
    print(header, flush=True)
    results: dict = {"cpu": header, "args": {k: str(v) for k, v in vars(args).items()}, "step2": [], "segment": []}
    start = time.perf_counter()

    train_dir, holdout_dir = synthetic(args.images, args.seed), synthetic(args.holdout, args.seed + 1)
    step2 = dict(epochs=args.epochs, batch_size=args.batch, lr=args.lr, image_size=parse_size(args.size),
                 arch=args.arch, seed=args.seed if args.run_seed is None else args.run_seed, workers=args.workers,
                 device=args.device)
    print(f"step 2: {args.images} synthetic images (seed {args.seed}), held-out {args.holdout} (seed "
          f"{args.seed + 1}); {args.arch} at {args.size}, {args.epochs} epochs, batch {args.batch}", flush=True)
    run_variants("multiclass", args.variants, train_dir, holdout_dir, root, "macro F1", results["step2"],
                 lambda: args.json and args.json.write_text(json.dumps(results, indent=1)), start, **step2)

    for name in args.ensembles:
        result = run_ensemble(name.split("+"), holdout_dir, root, **step2)
        if result is None:
            print(f"  ensemble {name}: a member is not finished under {root}, skipped", flush=True)
            continue
        results["step2"].append(result)
        print(f"  ensemble {name}: macro F1 {result['macro']:.3f} {result['per_class']} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))

    if args.segment:
        from steelinspect.train.segment import parse_crop_widths

        seg_train = synthetic(args.seg_images, args.seed)
        seg_holdout = defect_subset(holdout_dir, root / f"holdout-defects-{args.seg_holdout}", args.seg_holdout)
        seg = dict(epochs=args.seg_epochs, batch_size=args.seg_batch, lr=args.lr, image_size=parse_size(args.seg_size),
                   crop_width=parse_crop_widths(args.seg_crop), arch="unet_resnet18",
                   seed=args.seed if args.run_seed is None else args.run_seed,
                   workers=args.workers, device=args.device)
        print(f"segmenter: {args.seg_images} synthetic images (seed {args.seed}), held-out: the first "
              f"{args.seg_holdout} defect images of the step 2 held-out set; unet_resnet18 at {args.seg_size}, crops "
              f"{args.seg_crop}, {args.seg_epochs} epochs, batch {args.seg_batch}", flush=True)
        run_variants("segment", args.seg_variants, seg_train, seg_holdout, root, "macro Dice", results["segment"],
                     lambda: args.json and args.json.write_text(json.dumps(results, indent=1)), start, **seg)

    results["seconds"] = round(time.perf_counter() - start)
    print()
    print(header)
    if results["step2"]:
        print(table("step 2 F1 on the held-out set (in-split test macro F1 beside)", results["step2"], "split macro"))
        print(auc_table(results["step2"]))
    if results["segment"]:
        print(table("segmenter Dice on held-out images having the class (Kaggle Dice beside)", results["segment"],
                    "kaggle dice"))
    print(f"total {results['seconds']} s; runs in {root}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
