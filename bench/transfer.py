"""Does what is learned on synthetic steel carry over to real steel? Models trained only on synthetic data,
scored on a real labelled set (default: the 30 images of ../shared/severstal-sample) and on real clean frames
cut from its defect-free columns (steelinspect.data.real_clean).

    python bench/transfer.py                                   # classifiers at the stated budget, segmenter 3 epochs
    python bench/transfer.py --seg-epochs 12 --paste 0 --frame-norm 0.5   # the whole stated budget (about 1 h more)
    python bench/transfer.py --binary RUN --multiclass RUN --segment RUN    # score runs you already have
    python bench/transfer.py --step1-only [--binary RUN]       # step 1 alone: train (or take) a binary run only
    python bench/transfer.py --segment-only [--segment RUN]    # the segmenter alone: its Dice on the real masks
    python bench/transfer.py --real DATA_DIR                   # any Kaggle-layout set with masks (a plant's own)

Prints, for the real defect images: the share step 1 flags, the share where step 2 (alone, with its tuned
thresholds) names at least one class that is really there (and how many it names on average) and where its
top class is one, the cascade's
end-to-end share (flagged and a right class), the segmenter's Dice per class (alone, without the classifiers'
gate; mean over the images that have the class) and, for the real clean frames, the share step 1 passes.
Step 1 is also scored without its threshold: the ROC AUC of its probability between the real defect images and
the real clean frames (the ranking), and the share of clean frames it would pass at the threshold that still
flags 80% of the defect images (what the best threshold could do): a low pass share with a good AUC is a
threshold tuned on synthetic validation that does not fit real steel, a low AUC is a model that cannot tell.
Then the remedy a plant has, measured without leakage: step 1's T1 tuned on reviewed real frames (`tune-bands
--data`'s rule) in 5 folds by image, scored on the held-out fold (step1_reviewed); with --segment-only, the
segmenter's thresholds and minimum areas re-tuned on the real masks in the same way (segment_reviewed). --adapt
adds the remedy that needs no label: every run's BatchNorm statistics re-estimated on unlabelled real frames
(`steelinspect adapt`), cross-fitted in the same way (adapted on the frames of 4 folds, scored on the fifth;
cross_fitted_adaptation).
Every model number here comes from models trained on synthetic data only; the scores are on real images.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from common import cpu_model, synthetic, timer

from steelinspect.constants import CLASS_IDS
from steelinspect.data.real_clean import MARGIN, MIN_WIDTH, clean_frames
from steelinspect.data.realism import dataset_items
from steelinspect.infer.cascade import decide_classes, defect_threshold
from steelinspect.infer.config import PredictConfig
from steelinspect.infer.inspect import Inspector
from steelinspect.metrics.dice import dice_masks

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "severstal-sample"


def train_runs(args, out: Path) -> dict[str, Path]:
    from steelinspect.train.api import TrainConfig, train

    data = Path(args.synth) if args.synth else synthetic(args.images, args.seed)
    size = tuple(int(v) for v in args.size.split("x"))
    seg_size = tuple(int(v) for v in args.seg_size.split("x"))
    runs = {}
    workers = {} if args.workers is None else {"workers": args.workers}
    tasks = (("binary", args.epochs, size), ("multiclass", args.epochs, size), ("segment", args.seg_epochs, seg_size))
    tasks = tasks[:1] if args.step1_only else tasks[2:] if args.segment_only else tasks
    for task, epochs, image_size in tasks:
        print(f"training {task}: {epochs} epochs at {image_size[0]}x{image_size[1]} on {data}", flush=True)
        # --seg-sampler: the segmenter's only; the classifiers keep their task defaults. The rest: every run's.
        options = {"sampler": args.seg_sampler} if task == "segment" and args.seg_sampler else {}
        if task != "segment" and args.arch:
            options["arch"] = args.arch
        if task == "binary" and args.frame_norm is not None:
            options["frame_norm"] = args.frame_norm
        options.update(training_options(args))
        with timer() as t:
            runs[task] = train(TrainConfig(task=task, data=data, out=out / task, epochs=epochs, image_size=image_size,
                                           seed=args.seed, augment_preset=args.augment, device=args.device,
                                           **workers, **options), progress=False)
        print(f"  {t['seconds']:.0f} s", flush=True)
    return runs


def training_options(args) -> dict:
    """TrainConfig fields that --paste, --lr and --warmup set for every run trained here (only those given)."""
    given = {"paste": args.paste, "lr": args.lr, "warmup": args.warmup}
    return {name: value for name, value in given.items() if value is not None}


def options_text(args) -> str:
    """The same options as `train` spells them, for the printed headers."""
    arch = f", classifiers --arch {args.arch}" if args.arch else ""
    frame = f", step 1 --frame-norm {args.frame_norm:g}" if args.frame_norm is not None else ""
    return "".join(f", --{name} {value:g}" for name, value in training_options(args).items()) + arch + frame


def step1_ranking(p_defect: list[float], p_clean: list[float], flag_share: float = 0.8) -> dict:
    """Step 1 without its threshold: ROC AUC between the defect images (positive) and the clean frames, and the
    share of clean frames passed at the highest threshold that still flags `flag_share` of the defect images."""
    pos, neg = np.asarray(p_defect, dtype=float), np.asarray(p_clean, dtype=float)
    if not len(pos) or not len(neg):
        return {"step1_auc": float("nan"), "clean_passed_at_flag_share": float("nan"), "flag_share": flag_share}
    # P(a defect image scored above a clean frame), ties counted half.
    auc = float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))
    # the k-th lowest, k = the defect images it may miss (1e-9: 0.2 * 30 is 5.999... in floating point)
    threshold = np.sort(pos)[int(np.floor((1 - flag_share) * len(pos) + 1e-9))]
    return {"step1_auc": auc, "clean_passed_at_flag_share": float((neg < threshold).mean()), "flag_share": flag_share}


def step1_reviewed(per_image: dict, recalls=(0.8, 0.9), folds: int = 5) -> dict:
    """Step 1 with its OK band's T1 tuned on a plant's reviewed real frames (`tune-bands --data REVIEWED`, the same
    rule: t1_for_recall), measured without scoring a frame T1 was tuned on: the real images are split into `folds`
    folds by image (a clean frame goes with the image it was cut from); each fold's T1 comes from the defect images
    of the other folds; the shares of the fold's defect images flagged (p >= T1) and clean frames passed (p < T1)
    are pooled over folds. The weights stay the synthetic-only ones: only the threshold sees real images."""
    from steelinspect.tuning.bands import t1_for_recall

    if len(per_image["ids"]) < folds:  # too few defect images to hold any out
        return {"reviewed_t1": {}, "reviewed_folds": folds}
    ids = sorted(set(per_image["ids"]) | set(per_image["clean_ids"]))
    fold_of = {image_id: i % folds for i, image_id in enumerate(ids)}
    pos, pos_fold = np.asarray(per_image["p_defect"]), np.array([fold_of[i] for i in per_image["ids"]])
    neg, neg_fold = np.asarray(per_image["p_defect_clean"]), np.array([fold_of[i] for i in per_image["clean_ids"]])
    out = {}
    for recall in recalls:
        flagged = passed = 0
        for k in range(folds):
            t1 = t1_for_recall(pos[pos_fold != k], recall)
            flagged += int((pos[pos_fold == k] >= t1).sum())
            passed += int((neg[neg_fold == k] < t1).sum())
        out[str(recall)] = {"flagged": flagged / len(pos), "passed": passed / len(neg) if len(neg) else float("nan")}
    return {"reviewed_t1": out, "reviewed_folds": folds}


ADAPT_FOLDS = 5


def cross_fitted_adaptation(runs: dict[str, Path | None], items: list, args, scorer) -> dict:
    """The runs adapted (tuning/adapt.py: BatchNorm statistics from unlabelled frames; weights and thresholds
    unchanged) on real frames they are then not scored on. The real images go into ADAPT_FOLDS folds (stratified
    by class set, seeded: bench/fewshot.py's folds); for fold k every run is adapted on the other folds' images
    and the clean frames cut from them (a folder of unlabelled frames, as a plant's camera would give), and
    `scorer(adapted runs, fold k's items)` scores it; the scores are pooled over the folds (fewshot.Pool)."""
    import cv2

    from fewshot import Pool, folds_of
    from steelinspect.tuning.adapt import adapt_run

    pool = Pool()
    source = getattr(args, "adapt_on", "both")  # what the unlabelled frames are (--adapt-on: how the mix matters)
    for k, held in enumerate(folds_of(items, ADAPT_FOLDS, args.seed)):
        held = set(held)
        rest = [item for item in items if item[0] not in held]
        with tempfile.TemporaryDirectory() as tmp:
            frames = Path(tmp) / "frames"
            frames.mkdir()
            if source != "clean-frames":
                for image_id, image, _masks in rest:
                    cv2.imwrite(str(frames / f"{Path(image_id).stem}.png"), image)
            if source != "images":
                for span, frame in clean_frames(rest, args.margin, args.min_width):
                    cv2.imwrite(str(frames / f"{Path(span.name).stem}.png"), frame)
            adapted = {task: adapt_run(run, frames, Path(tmp) / task, workers=1)
                       for task, run in runs.items() if run is not None}
            pool.add(scorer(adapted, [item for item in items if item[0] in held]))
        print(f"  adapted and scored fold {k + 1}/{ADAPT_FOLDS}", flush=True)
    return pool.row()


def print_adapted(row: dict) -> None:
    print(f"\nadapted on unlabelled real frames (BatchNorm statistics; {ADAPT_FOLDS} folds, scored on frames not "
          "adapted on):")
    for key, label in (("step1_flagged", "step 1 flags a real defect image"),
                       ("clean_frames_passed", "step 1 passes a real clean frame"),
                       ("step2_names_a_true_class", "step 2 names a class that is there")):
        if key in row and row[key] == row[key]:  # not NaN
            print(f"  {label:<38} {row[key]:6.1%}")
    if "step1_auc" in row:
        print(f"  {'step 1 ROC AUC, defect vs clean frames':<38} {row['step1_auc']:6.3f}")
    if "step2_classes_named_mean" in row:
        print(f"  {'step 2 classes named per image (mean)':<38} {row['step2_classes_named_mean']:6.2f}")
    for c, mean in sorted(row.get("dice", {}).items()):
        print(f"  segmenter Dice, class {c}                   {mean:6.3f}")


def score_step1(binary: Path, items: list, margin: int, min_width: int) -> dict:
    """Step 1 alone (a binary run, no step 2): the share of real defect images it flags and of real clean frames
    it passes at its tuned threshold, and its threshold-free ranking (step1_ranking)."""
    from steelinspect.infer.engines import make_engine
    from steelinspect.runs.ensemble import load_model
    from steelinspect.postprocess.activations import sigmoid

    run = load_model(binary)
    if run.head != "binary":
        raise SystemExit(f"--binary needs a binary run, {binary} is {run.head!r}")
    engine = make_engine(run, PredictConfig(batch_size=1, workers=1, engine="torch"))
    threshold = defect_threshold(run)

    def p_defect(image: np.ndarray) -> float:
        return float(sigmoid(engine(run.preprocess(image)[None]))[0, 0])

    defects = [(image_id, image) for image_id, image, masks in items if masks]
    spans = list(clean_frames(items, margin, min_width))
    pos, neg = [p_defect(image) for _, image in defects], [p_defect(frame) for _, frame in spans]
    per_image = {"p_defect": pos, "p_defect_clean": neg, "ids": [image_id for image_id, _ in defects],
                 "clean_ids": [span.image_id for span, _ in spans]}
    return {"defect_images": len(pos), "clean_frames": len(neg), "threshold": threshold,
            "step1_flagged": float(np.mean(np.asarray(pos) >= threshold)),
            "clean_frames_passed": float(np.mean(np.asarray(neg) < threshold)) if neg else float("nan"),
            **step1_ranking(pos, neg), **step1_reviewed(per_image), "per_image": per_image}


def mean_per_class(dice: dict[int, list[float]]) -> dict[int, tuple[float, int]]:
    """Per class: (mean Dice, images) over the images that have it (classes with none left out)."""
    return {c: (float(np.mean(v)), len(v)) for c, v in dice.items() if v}


def truth_and_dice(predicted: np.ndarray, masks: dict) -> tuple[np.ndarray, dict[int, float]]:
    """The true masks as a (4, H, W) array beside `predicted`, and the Dice of each class that is really there."""
    truth = np.zeros_like(predicted)
    for c, m in masks.items():
        truth[c - 1] = m
    per_class = dice_masks(predicted, truth)
    return truth, {c: float(per_class[c - 1]) for c in masks}


def segment_dice(step, image: np.ndarray, masks: dict) -> dict[int, float]:
    """The segmenter alone (no rows, so no gate) on one grey image: Dice per class that is really there."""
    return truth_and_dice(step(step.preprocess(image)[None])[0].masks, masks)[1]


# Post-processing re-tuned on real masks may go below the training grid's lowest threshold (0.3): on real steel a
# synthetic-trained segmenter's probabilities run lower than on the synthetic validation images it was tuned on.
REVIEW_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25)
REVIEW_FOLDS = 5


def score_segment(segment: Path, items: list, reviewed: bool = False) -> dict:
    """The segmenter alone (a segment run, no classifiers): its Dice on the real masks, per class, mean over
    the images that have the class. `reviewed`: also with its post-processing re-tuned on real masks, cross-fitted
    (segment_reviewed)."""
    from steelinspect.infer.engines import make_engine
    from steelinspect.infer.segment_predict import SegmentOptions, SegmentStep
    from steelinspect.postprocess.grid import THRESHOLDS, PostprocessGrid
    from steelinspect.postprocess.segmenter import segment_probs, to_full_size
    from steelinspect.runs.ensemble import load_model

    run = load_model(segment)
    step = SegmentStep(run, SegmentOptions(), make_engine(run, PredictConfig(batch_size=1, workers=1, engine="torch")))
    grid = PostprocessGrid(thresholds=REVIEW_THRESHOLDS + THRESHOLDS, defaults=step.postprocess)
    dice: dict[int, list[float]] = {c: [] for c in CLASS_IDS}
    scores = []
    for _, image, masks in items:
        probs = to_full_size(segment_probs(step.engine, step.preprocess(image)[None])[0])
        predicted, _ = step.postprocess(probs)  # what `predict` does with the run's own tuned setting
        truth, per_class = truth_and_dice(predicted, masks)
        for c, value in per_class.items():
            dice[c].append(value)
        if reviewed:
            scores.append(grid.score_image(probs, truth))
    result = {"dice": mean_per_class(dice)}
    if reviewed and len(items) >= 2 * REVIEW_FOLDS:
        result.update(segment_reviewed(grid, scores, items))
    return result


def segment_reviewed(grid, scores: list, items: list, seed: int = 0) -> dict:
    """The segmenter's thresholds and minimum areas re-tuned per class on real masks (the Kaggle objective, as
    training tunes them on synthetic validation; `grid` reaches lower thresholds), measured without scoring an
    image they were tuned on: the images go into REVIEW_FOLDS folds stratified by class set (bench/fewshot.py's
    folds); each fold is scored with the setting tuned on the other folds; the Dice per class (mean over the
    images that have it) is pooled over folds. The weights stay the synthetic-only ones."""
    from fewshot import folds_of

    dice = np.stack([s.dice for s in scores])  # (N, 4, T, M)
    positive = np.stack([s.positive for s in scores])
    index = {item[0]: i for i, item in enumerate(items)}
    held_dice: dict[int, list[float]] = {c: [] for c in CLASS_IDS}
    settings = []
    for fold in folds_of(items, REVIEW_FOLDS, seed):
        held = np.zeros(len(items), bool)
        held[[index[i] for i in fold]] = True
        post = grid.best(dice[~held].mean(axis=0))
        settings.append({"thresholds": list(post.thresholds), "min_areas": list(post.min_areas)})
        t, m = grid.index_of(post)
        for c in CLASS_IDS:
            rows = held & positive[:, c - 1]
            held_dice[c].extend(dice[rows, c - 1, t[c - 1], m[c - 1]].tolist())
    return {"reviewed_dice": mean_per_class(held_dice),
            "reviewed_settings": settings, "reviewed_folds": REVIEW_FOLDS}


def score_segment_alone(segment: Path, items: list) -> dict:
    """score_segment on the items that have a defect, counted as score()'s results are (so fewshot.Pool pools it)."""
    defect_items = [item for item in items if item[2]]
    return {"defect_images": len(defect_items), "clean_frames": 0, **score_segment(segment, defect_items)}


def score(binary: Path, multiclass: Path, segment: Path | None, items: list, margin: int, min_width: int) -> dict:
    """The transfer scores on (image id, grey image, {class: mask}) items (data.realism.dataset_items); the clean
    frames are cut from these same items."""
    inspector = Inspector(binary, multiclass, segment, PredictConfig(batch_size=1, workers=1, engine="torch"))
    head, thresholds = inspector.cascade.multiclass.head, inspector.cascade.multiclass.thresholds
    flagged = named = top_right = end_to_end = named_count = 0
    dice: dict[int, list[float]] = {c: [] for c in CLASS_IDS}
    named_per_class = {c: [0, 0] for c in CLASS_IDS}  # [images with class c where step 2 names c, images with c]
    # Per class, the images whose most probable class it is: a class the real images lack ranked first on many of
    # them (class 1 on the sample) is a look the generator gave it that real steel has under another class.
    top_counts = {c: 0 for c in CLASS_IDS}
    defect_items = [item for item in items if item[2]]
    # Per image, for threshold-free scores pooled over folds (bench/fewshot.py): step 1's probability on the defect
    # images and on the clean frames, step 2's probabilities, the classes it names and the true ones.
    per_image = {"p_defect": [], "p_defect_clean": [], "p_class": [], "named": [], "truth": [], "ids": [],
                 "clean_ids": []}
    for image_id, image, masks in defect_items:
        result = inspector.inspect(image, image_id)
        per_image["ids"].append(image_id)
        truth = set(masks)
        p_class = np.array([result.p_class[str(c)] for c in CLASS_IDS])
        alone = set(decide_classes(head, p_class, thresholds))
        per_image["p_defect"].append(float(result.p_defect))
        per_image["p_class"].append(p_class.tolist())
        per_image["named"].append(sorted(alone))
        per_image["truth"].append(sorted(truth))
        flagged += result.has_defect
        named += bool(alone & truth)
        named_count += len(alone)
        for c in truth:
            named_per_class[c][0] += c in alone
            named_per_class[c][1] += 1
        top_right += int(np.argmax(p_class)) + 1 in truth
        top_counts[int(np.argmax(p_class)) + 1] += 1
        end_to_end += result.has_defect and bool(set(result.classes) & truth)
        if inspector.segment is not None:
            for c, value in segment_dice(inspector.segment, result.image, masks).items():
                dice[c].append(value)
    passed = total_clean = 0
    for span, frame in clean_frames(items, margin, min_width):
        total_clean += 1
        clean_result = inspector.inspect(frame, span.name)
        passed += not clean_result.has_defect
        per_image["p_defect_clean"].append(float(clean_result.p_defect))
        per_image["clean_ids"].append(span.image_id)
    n = len(defect_items)
    return {
        "defect_images": n, "clean_frames": total_clean,
        "step1_flagged": flagged / n, "step2_names_a_true_class": named / n, "step2_top_class_true": top_right / n,
        "step2_top_class_counts": top_counts,
        "cascade_flagged_and_true_class": end_to_end / n, "step2_classes_named_mean": named_count / n,
        "clean_frames_passed": passed / total_clean if total_clean else float("nan"),
        "dice": mean_per_class(dice),
        "step2_recall": {c: (k / n_c, n_c) for c, (k, n_c) in named_per_class.items() if n_c},
        **step1_ranking(per_image["p_defect"], per_image["p_defect_clean"]), **step1_reviewed(per_image),
        "per_image": per_image,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", default=str(REAL), help="Kaggle-layout set with masks (default: the real sample)")
    parser.add_argument("--binary"), parser.add_argument("--multiclass"), parser.add_argument("--segment")
    parser.add_argument("--synth", help="a synthetic DATA_DIR to train on (default: generate --images)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6, help="classifier epochs")
    parser.add_argument("--size", default="128x416", help="classifier image size HxW")
    parser.add_argument("--seg-epochs", type=int, default=3)
    parser.add_argument("--seg-size", default="128x800", help="segmenter image size HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=int, default=MARGIN, help="px between a clean span and any mask")
    parser.add_argument("--min-width", type=int, default=MIN_WIDTH, help="narrowest clean span used (px)")
    parser.add_argument("--device", default="cpu", help="where the runs train (cpu, cuda; the scores do not depend "
                        "on it beyond floating-point noise)")
    parser.add_argument("--workers", type=int, default=None, help="data-loading processes per run")
    parser.add_argument("--out", help="keep the trained runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    parser.add_argument("--step1-only", action="store_true",
                        help="train (or, with --binary alone, take) a binary run only and score step 1 alone")
    parser.add_argument("--segment-only", action="store_true",
                        help="train (or, with --segment alone, take) a segment run only and score its Dice alone")
    parser.add_argument("--seg-sampler", choices=("natural", "balanced"), help="the segmenter's --sampler "
                        "(default: the task's)")
    parser.add_argument("--adapt", action="store_true", help="also score every run adapted on unlabelled real "
                        "frames (BatchNorm statistics, cross-fitted in 5 folds)")
    parser.add_argument("--adapt-on", default="both", choices=("both", "images", "clean-frames"),
                        help="--adapt's unlabelled frames: the other folds' images and their clean frames (default), "
                        "or only one of the two (on the real sample the images all hold a defect)")
    parser.add_argument("--augment", default="standard", choices=("standard", "strong"),
                        help="the training augmentation preset of the runs trained here")
    parser.add_argument("--paste", type=float, help="the runs trained here: --paste P (copy-paste of defects, "
                        "data/paste.py)")
    parser.add_argument("--lr", type=float, help="the runs trained here: --lr (default: train's)")
    parser.add_argument("--warmup", type=float, help="the runs trained here: --warmup EPOCHS (train/warmup.py)")
    parser.add_argument("--arch", help="the classifiers trained here: --arch (default: train's, vgg)")
    parser.add_argument("--frame-norm", type=float, help="step 1 trained here: --frame-norm W (each frame's own "
                        "BatchNorm statistics mixed in at inference, models/frame_norm.py; the stated budget: 0.5)")
    args = parser.parse_args(argv)
    real = Path(args.real)
    if not (real / "train.csv").is_file():
        print(f"no labelled real set at {real} (train.csv + train_images/): pass --real DATA_DIR", file=sys.stderr)
        return 2
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads; real set: {real}")
    if args.step1_only or (args.binary and not args.multiclass):
        return step1_main(args, real)
    if args.segment_only or (args.segment and not args.binary):
        return segment_main(args, real)
    with tempfile.TemporaryDirectory() as tmp:
        if args.binary and args.multiclass:
            runs = {"binary": Path(args.binary), "multiclass": Path(args.multiclass),
                    "segment": Path(args.segment) if args.segment else None}
            print("budget: the runs given")
        else:
            runs = train_runs(args, Path(args.out or tmp))
            print(f"budget: {args.images} synthetic images (seed {args.seed}); classifiers {args.epochs} epochs at "
                  f"{args.size}, segmenter {args.seg_epochs} epochs at {args.seg_size}{options_text(args)}")
        items = list(dataset_items(real))
        result = score(runs["binary"], runs["multiclass"], runs["segment"], items, args.margin, args.min_width)
        if args.adapt:
            result["adapted"] = cross_fitted_adaptation(runs, items, args, lambda r, held: score(
                r["binary"], r["multiclass"], r.get("segment"), held, args.margin, args.min_width))
    print(f"\nreal defect images: {result['defect_images']}; real clean frames: {result['clean_frames']} "
          f"(margin {args.margin} px, spans >= {args.min_width} px of steel, mirrored to 1600, any band kept once)")
    rows = [("step 1 flags a real defect image", result["step1_flagged"]),
            ("step 1 passes a real clean frame", result["clean_frames_passed"]),
            ("step 2 names a class that is there", result["step2_names_a_true_class"]),
            ("step 2's top class is there", result["step2_top_class_true"]),
            ("cascade: flagged and a true class", result["cascade_flagged_and_true_class"])]
    for label, value in rows:
        print(f"  {label:<38} {value:6.1%}")
    print_ranking(result)
    # Naming every class would make "names a class that is there" 100%: how many it names is printed beside it.
    print(f"  {'step 2 classes named per image (mean)':<38} {result['step2_classes_named_mean']:6.2f}")
    if "step2_top_class_counts" in result:
        tops = "  ".join(f"{c}: {k}" for c, k in result["step2_top_class_counts"].items())
        label = "images by step 2's top class"
        print(f"  {label:<38} {tops}")
    print_dice(result)
    if args.adapt:
        print_adapted(result["adapted"])
    write_json(args, result)
    return 0


def print_ranking(result: dict) -> None:
    print(f"  {'step 1 ROC AUC, defect vs clean frames':<38} {result['step1_auc']:6.3f}")
    print(f"  {'clean passed where 80% are flagged':<38} {result['clean_passed_at_flag_share']:6.1%}")
    folds = result["reviewed_folds"]
    for recall, r in result["reviewed_t1"].items():
        print(f"  T1 tuned on reviewed real frames (target recall {float(recall):.0%}, {folds} folds by image): "
              f"flags {r['flagged']:.1%} of held-out defect images, passes {r['passed']:.1%} of clean frames")


def single_run(args, task: str, given: str | None, tmp: Path, budget: str) -> Path:
    """The run a one-model mode scores: the one given, or one trained here (its budget printed)."""
    if given:
        print("budget: the run given")
        return Path(given)
    run = train_runs(args, Path(args.out or tmp))[task]
    print(f"budget: {args.images} synthetic images (seed {args.seed}); {budget}{options_text(args)}")
    return run


def step1_main(args, real: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        binary = single_run(args, "binary", args.binary, Path(tmp),
                            f"step 1 {args.epochs} epochs at {args.size}, --augment {args.augment}")
        items = list(dataset_items(real))
        result = score_step1(binary, items, args.margin, args.min_width)
        if args.adapt:
            result["adapted"] = cross_fitted_adaptation({"binary": binary}, items, args, lambda r, held: score_step1(
                r["binary"], held, args.margin, args.min_width))
    print(f"\nreal defect images: {result['defect_images']}; real clean frames: {result['clean_frames']} "
          f"(margin {args.margin} px, spans >= {args.min_width} px of steel, mirrored to 1600, any band kept once); "
          f"step 1 threshold {result['threshold']:.3f}")
    print(f"  {'step 1 flags a real defect image':<38} {result['step1_flagged']:6.1%}")
    print(f"  {'step 1 passes a real clean frame':<38} {result['clean_frames_passed']:6.1%}")
    print_ranking(result)
    if args.adapt:
        print_adapted(result["adapted"])
    write_json(args, result)
    return 0


def print_dice(result: dict) -> None:
    for c, (mean, count) in sorted(result["dice"].items()):
        print(f"  segmenter Dice, class {c} ({count:2d} images)        {mean:6.3f}")
    if "reviewed_dice" in result:
        print(f"\npost-processing re-tuned on real masks ({result['reviewed_folds']} folds, each scored with the setting "
              "tuned on the others; weights unchanged):")
        for c, (mean, count) in sorted(result["reviewed_dice"].items()):
            print(f"  segmenter Dice, class {c} ({count:2d} images)        {mean:6.3f}")


def segment_main(args, real: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        segment = single_run(args, "segment", args.segment, Path(tmp), f"segmenter {args.seg_epochs} epochs at "
                             f"{args.seg_size}, --sampler {args.seg_sampler or 'default'}")
        items = list(dataset_items(real))
        result = score_segment(segment, [item for item in items if item[2]], reviewed=True)
        if args.adapt:
            result["adapted"] = cross_fitted_adaptation({"segment": segment}, items, args, lambda r, held:
                                                        score_segment_alone(r["segment"], held))
    print(f"\nreal masks scored: {sum(count for _, count in result['dice'].values())}")
    print_dice(result)
    if args.adapt:
        print_adapted(result["adapted"])
    write_json(args, result)
    return 0


def write_json(args, result: dict) -> None:
    """--json: the scores, per-image probabilities included, with the arguments that produced them."""
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **result}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
