"""A few real images: k-fold over a small labelled real set, comparing synthetic-only, real-only and
synthetic-pretrained-then-real training, scored on each fold's held-out images.

    python bench/fewshot.py --pretrained DIR          # DIR holds binary/, multiclass/, segment/ runs trained on
                                                      # synthetic data (bench/transfer.py --out DIR makes them)
    python bench/fewshot.py --pretrained DIR --real MY_PLANT_DATA --folds 5 --epochs 10

Folds are stratified by each image's class set and fixed by --seed. For fold k the other folds' images, plus
the real clean frames cut from their defect-free columns (data.real_clean; the real sample has no clean plate),
form a Kaggle-layout training set (train.csv + train_images/, written to a temporary folder); each step is then
trained from scratch on it (real-only) and from the synthetic run (--init, lower learning rate: synthetic ->
real), and every variant is scored on fold k's held-out images and their clean frames with bench/transfer.py's
scores. The table pools the held-out predictions of all folds.

The fine-tune uses the small-data training options: --finetune-freeze N (the encoder frozen, BatchNorm in eval
mode, for the first N epochs; default 2) and --finetune-augment strong (default). --compare-plain adds the same
fine-tune without them (standard augmentation, nothing frozen) as a fourth variant; --real-augment strong gives
real-only training the strong augmentation too. --tasks binary,multiclass (or segment) measures the classifiers
(or the segmenter) alone, the segmenter being most of the time on a CPU; with --tasks segment DIR needs only
segment/ (bench/transfer.py --segment-only --out DIR) and the segmenter is scored alone, on the masks. Runs train
where `train` would (--device auto: a GPU when there is one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

from common import cpu_model
from transfer import REAL, score, score_segment_alone, step1_ranking

from steelinspect.constants import CLASS_IDS
from steelinspect.data.labels import read_labels
from steelinspect.data.layout import data_dir
from steelinspect.data.real_clean import MARGIN, MIN_WIDTH, clean_frames
from steelinspect.data.realism import dataset_items

SYNTHETIC, REAL_ONLY, FINETUNE, PLAIN = ("synthetic only", "real only", "synthetic -> real",
                                         "synthetic -> real, plain")


def folds_of(items: list, k: int, seed: int) -> list[list[str]]:
    """Image ids in k folds, stratified by class set: each set's images shuffled (seeded), then dealt in turn."""
    rng = np.random.default_rng(seed)
    by_key: dict[str, list[str]] = defaultdict(list)
    for image_id, _image, masks in items:
        by_key[",".join(map(str, sorted(masks)))].append(image_id)
    folds: list[list[str]] = [[] for _ in range(k)]
    turn = 0
    for key in sorted(by_key):
        ids = sorted(by_key[key])
        for i in rng.permutation(len(ids)):
            folds[turn % k].append(ids[i])
            turn += 1
    return folds


def write_fold_data(real: Path, items: list, train_ids: set[str], out: Path, margin: int, min_width: int) -> int:
    """train_ids' images and their clean frames as a Kaggle-layout set; returns how many clean frames."""
    images = out / "train_images"
    images.mkdir(parents=True)
    layout = data_dir(real)
    chosen = [item for item in items if item[0] in train_ids]
    for image_id, _image, _masks in chosen:
        (images / image_id).write_bytes(layout.image(image_id).read_bytes())
    clean = 0
    for span, frame in clean_frames(chosen, margin, min_width):
        cv2.imwrite(str(images / span.name), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        clean += 1
    labels = read_labels(layout.labels)
    labels = labels[labels.ImageId.isin(train_ids) & labels.EncodedPixels.astype(str).str.strip().ne("")]
    labels[["ImageId", "ClassId", "EncodedPixels"]].to_csv(out / "train.csv", index=False)
    return clean


def train_fold(data: Path, out: Path, args, init: dict[str, Path] | None, augment: str = "standard",
               freeze: int = 0) -> dict[str, Path]:
    """Step 1, step 2 and the segmenter on one fold's training set: from scratch (init None) or from the
    synthetic runs, with the given augmentation preset and frozen-encoder warm-up."""
    from steelinspect.train.api import TrainConfig, train
    from steelinspect.train.segment import parse_crop_widths

    size = tuple(int(v) for v in args.size.split("x"))
    seg_size = tuple(int(v) for v in args.seg_size.split("x"))
    runs = {}
    for task, image_size, epochs in (("binary", size, args.epochs), ("multiclass", size, args.epochs),
                                     ("segment", seg_size, args.seg_epochs or args.epochs)):
        if task not in args.tasks:
            continue
        config = TrainConfig(task=task, data=data, out=out / task, epochs=epochs, image_size=image_size,
                             seed=args.seed, val_fraction=args.val_fraction, test_fraction=0.0,
                             lr=args.lr_finetune if init else args.lr, init=init[task] if init else None,
                             augment_preset=augment, freeze_encoder_epochs=min(freeze, epochs),
                             **({"crop_width": parse_crop_widths(args.seg_crop)} if task == "segment" else {}))
        runs[task] = train(config, progress=False)
    return runs


def score_fold(runs: dict[str, Path], held_items: list, args) -> dict:
    """One variant's runs on a fold's held-out images: transfer.py's scores, or the segmenter's Dice alone."""
    if "binary" not in runs:
        return score_segment_alone(runs["segment"], held_items)
    return score(runs["binary"], runs["multiclass"], runs.get("segment"), held_items, args.margin, args.min_width)


def write_table(path: Path, args, pools: dict, folds_done: int) -> None:
    from steelinspect.io import write_json

    write_json(path, {"settings": vars(args), "folds_done": folds_done, "cpu": cpu_model(),
                      "variants": {v: {**p.row(), "defect_images": p.n, "clean_frames": p.clean}
                                   for v, p in pools.items()}})


class Pool:
    """Held-out scores of every fold, pooled (counts, not a mean of fold means)."""

    def __init__(self):
        self.n = self.clean = 0
        self.sums: dict[str, float] = defaultdict(float)
        self.dice: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
        self.recall: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
        self.per_image: dict[str, list] = defaultdict(list)

    def add(self, result: dict) -> None:
        n, clean = result["defect_images"], result["clean_frames"]
        self.n += n
        self.clean += clean
        for key in ("step1_flagged", "step2_names_a_true_class", "step2_classes_named_mean"):
            if key in result:  # not in a segmenter-alone result
                self.sums[key] += result[key] * n
        if clean:
            self.sums["clean_frames_passed"] += result["clean_frames_passed"] * clean
        for c, (mean, count) in result.get("dice", {}).items():
            self.dice[c][0] += mean * count
            self.dice[c][1] += count
        for c, (share, count) in result.get("step2_recall", {}).items():
            self.recall[c][0] += share * count
            self.recall[c][1] += count
        for key, values in result.get("per_image", {}).items():
            self.per_image[key] += values

    def row(self) -> dict:
        out = {k: v / self.n for k, v in self.sums.items() if k != "clean_frames_passed"}
        out["clean_frames_passed"] = self.sums["clean_frames_passed"] / self.clean if self.clean else float("nan")
        out["dice"] = {c: s / k for c, (s, k) in self.dice.items() if k}
        out["recall"] = {c: s / k for c, (s, k) in self.recall.items() if k}
        out.update(self.threshold_free())
        return out

    def threshold_free(self) -> dict:
        """Scores that do not hang on thresholds tuned on a few validation images: step 1's ROC AUC (held-out
        defect images against held-out clean frames) and, per class, step 2's ROC AUC over the defect images
        (class there or not) and its precision (share of the images it names c on that have c)."""
        from sklearn.metrics import roc_auc_score

        out: dict = {}
        pos, neg = self.per_image["p_defect"], self.per_image["p_defect_clean"]
        if pos and neg:
            out["step1_auc"] = step1_ranking(pos, neg)["step1_auc"]
        probs, truth, named = (np.array(self.per_image["p_class"]), self.per_image["truth"],
                               self.per_image["named"])
        out["auc"], out["precision"] = {}, {}
        for i, c in enumerate(CLASS_IDS):
            has = np.array([c in t for t in truth])
            if len(probs) and 0 < has.sum() < len(has):
                out["auc"][c] = float(roc_auc_score(has, probs[:, i]))
            calls = [c in t for t, n in zip(truth, named) if c in n]
            if calls:
                out["precision"][c] = float(np.mean(calls))
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", default=str(REAL), help="Kaggle-layout set with masks (default: the real sample)")
    parser.add_argument("--pretrained", required=True, help="folder with binary/, multiclass/, segment/ runs")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seg-epochs", type=int, default=0, help="segmenter epochs (default: --epochs)")
    parser.add_argument("--lr", type=float, default=1e-3, help="real-only learning rate")
    parser.add_argument("--lr-finetune", type=float, default=2e-4, help="synthetic -> real learning rate")
    parser.add_argument("--finetune-freeze", type=int, default=2,
                        help="synthetic -> real: epochs with the encoder frozen first (0: none)")
    parser.add_argument("--finetune-augment", default="strong", choices=("standard", "strong"))
    parser.add_argument("--real-augment", default="standard", choices=("standard", "strong"),
                        help="real-only training's augmentation")
    parser.add_argument("--skip-finetune", action="store_true", help="leave the synthetic -> real variant out")
    parser.add_argument("--compare-plain", action="store_true",
                        help="also fine-tune without the small-data options (standard augmentation, nothing frozen)")
    parser.add_argument("--json", help="write the pooled table here (rewritten after each fold)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--size", default="128x416")
    parser.add_argument("--seg-size", default="128x800")
    parser.add_argument("--seg-crop", default="384..800", help="segmenter training crop widths MIN..MAX (px of --seg-size)")
    parser.add_argument("--tasks", default="binary,multiclass,segment",
                        help="which steps to train per fold: all three, 'binary,multiclass' (the classifiers: no "
                             "Dice) or 'segment' (Dice only; the synthetic classifiers only let the scorer run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=int, default=MARGIN)
    parser.add_argument("--min-width", type=int, default=MIN_WIDTH)
    args = parser.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if sorted(args.tasks) not in (["binary", "multiclass", "segment"], ["binary", "multiclass"], ["segment"]):
        parser.error("--tasks: binary,multiclass,segment or binary,multiclass or segment")
    real, pretrained = Path(args.real), Path(args.pretrained)
    # --tasks segment scores the segmenter alone, so DIR needs only segment/ (bench/transfer.py --segment-only).
    needed = tuple(args.tasks)
    synthetic = {task: pretrained / task for task in needed}
    missing = [str(p) for p in synthetic.values() if not (p / "model.pt").is_file()]
    if missing:
        print(f"not a run directory: {', '.join(missing)} (bench/transfer.py --out DIR trains them)", file=sys.stderr)
        return 2
    items = list(dataset_items(real))
    folds = folds_of(items, args.folds, args.seed)
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads; real set {real}: {len(items)} images, "
          f"{args.folds} folds of {', '.join(str(len(f)) for f in folds)}")
    print(f"steps trained per fold: {', '.join(args.tasks)}; budget per fold and step: {args.epochs} epochs "
          f"(segmenter {args.seg_epochs or args.epochs}), classifiers at {args.size}, segmenter at {args.seg_size} "
          f"(crops {args.seg_crop}); lr {args.lr} (real only, {args.real_augment} augmentation), "
          f"{args.lr_finetune} (synthetic -> real: {args.finetune_augment} augmentation, encoder frozen for "
          f"{args.finetune_freeze} epochs)" + ("; plain fine-tune beside it" if args.compare_plain else ""))
    variants = [SYNTHETIC, REAL_ONLY, FINETUNE] + ([PLAIN] if args.compare_plain else [])
    if args.skip_finetune:  # e.g. real-only training at another --real-augment, beside an earlier full run
        variants.remove(FINETUNE)
    pools = {v: Pool() for v in variants}
    started = time.perf_counter()
    for k, held in enumerate(folds):
        held_set = set(held)
        held_items = [item for item in items if item[0] in held_set]
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            clean = write_fold_data(real, items, {i for i, _, _ in items} - held_set, data, args.margin, args.min_width)
            print(f"fold {k + 1}/{args.folds}: train on {len(items) - len(held)} real images + {clean} clean frames, "
                  f"score on {len(held)}", flush=True)
            trainers = {REAL_ONLY: lambda: train_fold(data, Path(tmp) / "real", args, None, args.real_augment),
                        FINETUNE: lambda: train_fold(data, Path(tmp) / "finetune", args, synthetic,
                                                     args.finetune_augment, args.finetune_freeze),
                        PLAIN: lambda: train_fold(data, Path(tmp) / "plain", args, synthetic)}
            runs = {v: synthetic if v == SYNTHETIC else trainers[v]() for v in variants}
            for variant, r in runs.items():
                pools[variant].add(score_fold(r, held_items, args))
        print(f"  fold {k + 1} done, {time.perf_counter() - started:.0f} s so far", flush=True)
        if args.json:
            write_table(Path(args.json), args, pools, k + 1)
    present = sorted({c for p in pools.values() for key in ("recall", "dice") for c in p.row()[key]})
    classifiers, dice = "binary" in args.tasks, "segment" in args.tasks
    header = (f"{'variant':<24}"
              + (f" {'AUC 1':>6} {'flags':>6} {'clean ok':>8} {'names':>6} "
                 + " ".join(f"{'rec ' + str(c):>6} {'prec ' + str(c):>6} {'AUC ' + str(c):>6}" for c in present)
                 if classifiers else "")
              + (" " + " ".join(f"{'Dice ' + str(c):>7}" for c in present) if dice else ""))
    print("\nheld-out real images, pooled over folds (AUC 1: step 1's ROC AUC, defect images against clean frames; "
          "flags: step 1 flags a defect image;\nclean ok: step 1 passes a clean frame; names: step 2 names a true "
          "class; rec c / prec c: step 2 names class c when it is there / c is there when step 2 names it;\nAUC c: "
          "step 2's ROC AUC for class c over the defect images; Dice c: the segmenter alone)")
    print(header)
    for variant, pool in pools.items():
        r = pool.row()
        print(f"{variant:<24}"
              + (f" {r.get('step1_auc', float('nan')):6.3f} {r['step1_flagged']:6.1%} {r['clean_frames_passed']:8.1%} "
                 f"{r['step2_names_a_true_class']:6.1%} "
                 + " ".join(f"{r['recall'].get(c, float('nan')):6.1%} {r['precision'].get(c, float('nan')):6.1%} "
                            f"{r['auc'].get(c, float('nan')):6.3f}" for c in present) if classifiers else "")
              + (" " + " ".join(f"{r['dice'].get(c, float('nan')):7.3f}" for c in present) if dice else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
