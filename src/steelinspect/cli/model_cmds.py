"""Model commands: `train binary|multiclass|segment` and `evaluate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from steelinspect.cli.console import out
from steelinspect.runs.config import default

if TYPE_CHECKING:
    from steelinspect.runs.config import TrainConfig

train_app = typer.Typer(help="Train a model into a run directory.", no_args_is_help=True)


def build_config(task: str, data: Path, out_dir: Path, **options) -> "TrainConfig":
    """TrainConfig from the options every `train` command shares (the CLI is only this translation)."""
    from steelinspect.data.transforms import parse_size
    from steelinspect.runs.config import TrainConfig

    size = options.pop("image_size")
    if isinstance(options.get("mask_classes"), str):
        options["mask_classes"] = parse_classes(options["mask_classes"], "--mask-classes")
    return TrainConfig(task=task, data=data, out=out_dir, image_size=parse_size(size), **options)


def parse_classes(text: str, option: str) -> tuple[int, ...]:
    """'2,3,4' -> (2, 3, 4); which classes are allowed is TrainConfig's check."""
    from steelinspect.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a comma-separated list of class numbers (e.g. 2,3,4)") from None


def _run(config) -> None:
    from steelinspect.pseudo.api import train  # train.api.train, after pseudo-labelling when --pseudo is given

    run_dir = train(config, progress=True, log=out.print)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 speaks
        out.print(f"run directory: {run_dir}")


def _size(task: str) -> str:
    """The task's default image size as the CLI spells it (HxW)."""
    return "x".join(map(str, default("image_size", task)))


# Options shared by every train command (typer needs them spelled out per command); every default is
# TrainConfig's (runs/config.py).
DATA = typer.Argument(..., help="DATA_DIR holding train.csv and train_images/.")
OUT = typer.Option(..., "--out", help="Run directory to create (or continue with --resume).")
EPOCHS = typer.Option(default("epochs"), "--epochs")
LR = typer.Option(default("lr"), "--lr", help="Adam learning rate.")
WARMUP_HELP = ("Epochs (fractions allowed) over which the learning rate rises linearly from near 0 to --lr's "
               "schedule at the start of training; 0: none.")
SEED = typer.Option(default("seed"), "--seed", help="Fixes splits, sampling, augmentation and initialisation.")
DEVICE = typer.Option(default("device"), "--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps.")
WORKERS = typer.Option(default("workers"), "--workers", help="Data loader worker processes (0: load in the main process).")
RESUME = typer.Option(default("resume"), "--resume", help="Continue an interrupted run from its last checkpoint.")
WEIGHTS = typer.Option(default("weights"), "--weights", help="torchvision ResNet/ResNeXt state dict (.pth) of the --arch's encoder to start from "
                       "(resnet18/34/50, resnext50_32x4d).")
FOLDS = typer.Option(default("folds"), "--folds", help="Train K runs on K stratified folds into one parent (OUT/fold_1.."
                     "fold_K, out-of-fold predictions, an ensemble tuned on them); the test split stays out of all.")
SAMPLER_HELP = ("natural (each training image once per epoch) or balanced (drawn with replacement so that each class "
                "is seen about equally often).")
INIT = typer.Option(default("init"), "--init", help="Run directory of the same --arch to start from (e.g. step 1's run for step 2): "
                    "every layer but the head. It must not have trained on this run's validation or test images.")
PRECISION = typer.Option(default("precision"), "--precision", help="Training arithmetic: fp32; bf16 (autocast, CPU or "
                         "CUDA; fast only on CPUs with AMX / AVX-512 BF16); fp16 (autocast + GradScaler, CUDA only). "
                         "Evaluation and metrics stay fp32.")
CHANNELS_LAST = typer.Option(default("channels_last"), "--channels-last/--no-channels-last",
                             help="Conv model and batches in channels-last memory format (see README for when it helps).")
COMPILE = typer.Option(default("compile"), "--compile/--no-compile", help="torch.compile the model for training "
                       "(compiles at the first batch, needs a C++ compiler on CPU).")

# Small data (a few real images, fine-tuned from a synthetic run with --init):
AUGMENT = typer.Option(default("augment_preset"), "--augment", help="Training augmentation: standard, or strong "
                       "(adds gamma, blur, noise and a larger shift/scale, masks kept aligned; for a few real images).")
FREEZE = typer.Option(default("freeze_encoder_epochs"), "--freeze-encoder-epochs", help="Keep the encoder (the "
                      "feature extractor) frozen, BatchNorm in eval mode, for the first N epochs so the head settles "
                      "on the --init / --weights features first; then everything trains.")


def _speed(precision: str, channels_last: bool, compile_: bool) -> dict:
    return {"precision": precision, "channels_last": channels_last, "compile": compile_}


def _small_data(augment: str, freeze_encoder_epochs: int) -> dict:
    return {"augment_preset": augment, "freeze_encoder_epochs": freeze_encoder_epochs}


# Held-out shares (a few images: a larger validation share, or --folds; see README, "Small data"):
VAL_FRACTION = typer.Option(default("val_fraction"), "--val-fraction", help="Share of the images held out for "
                            "validation, where the best epoch and the thresholds are chosen (stratified by label).")
TEST_FRACTION = typer.Option(default("test_fraction"), "--test-fraction", help="Share of the images held out for "
                             "the final test scores; 0: no test split (the run reports its validation scores).")


def _held_out(val_fraction: float, test_fraction: float) -> dict:
    return {"val_fraction": val_fraction, "test_fraction": test_fraction}


PASTE_HELP = ("Share of training images that get one more defect (and its mask), cut from another training image, of "
              "a class drawn uniformly: the rare classes seen on many plates. Not with the single-label head of "
              "`train multiclass --protocol seed`.")
PSEUDO = typer.Option(default("pseudo"), "--pseudo", help="Folder of unlabelled images: --teacher labels them, the "
                      "confident ones join every training batch (recorded in RUN_DIR/pseudo.json).")
TEACHER = typer.Option(default("teacher"), "--teacher", help="Run directory that pseudo-labels --pseudo (the same "
                       "task: a multiclass run for multiclass, a segment run for segment).")
PSEUDO_CONFIDENCE = typer.Option(default("pseudo_confidence"), "--pseudo-confidence", help="Keep an image only when "
                                 "every probability is >= C or <= 1-C (per class; per pixel for the segmenter).")
PSEUDO_SHARE = typer.Option(default("pseudo_share"), "--pseudo-share", help="Share of every training batch that is "
                            "pseudo-labelled.")


def _classifier(task: str):
    def command(
        data: Path = DATA,
        out_dir: Path = OUT,
        protocol: str = typer.Option(default("protocol"), "--protocol", help="full (every image) or seed (the capstone's N per class)."),
        per_class: int = typer.Option(default("per_class"), "--per-class", help="Images per class under --protocol seed."),
        epochs: int = EPOCHS,
        batch_size: int = typer.Option(default("batch_size", task), "--batch-size"),
        lr: float = LR,
        warmup: float = typer.Option(None, "--warmup", help=WARMUP_HELP + f" (default: {default('warmup', task):g}"
                                     + ("; 0 under --protocol seed)" if task == "multiclass" else ")")),
        image_size: str = typer.Option(_size(task), "--image-size", help="HxW the images are resized to."),
        arch: str = typer.Option(default("arch", task), "--arch", help="vgg, resnet18, resnet34, resnet50 or resnext50 (ResNeXt-50 32x4d)."),
        seed: int = SEED,
        device: str = DEVICE,
        workers: int = WORKERS,
        resume: bool = RESUME,
        weights: Path = WEIGHTS,
        init: Path = INIT,
        folds: int = FOLDS,
        val_fraction: float = VAL_FRACTION,
        test_fraction: float = TEST_FRACTION,
        pseudo: Path = PSEUDO,
        teacher: Path = TEACHER,
        pseudo_confidence: float = PSEUDO_CONFIDENCE,
        pseudo_share: float = PSEUDO_SHARE,
        sampler: str = typer.Option(None, "--sampler", help=SAMPLER_HELP + f" (default: {default('sampler', task)}; "
                                    "natural under --protocol seed and with --pseudo)"),
        loss: str = typer.Option(None, "--loss", help="bce (BCE with class-frequency positive weights; cross-entropy "
                                 f"under --protocol seed) or focal. (default: {default('loss', task)}; bce under "
                                 "--protocol seed)"),
        focal_gamma: float = typer.Option(default("focal_gamma"), "--focal-gamma", help="--loss focal: (1 - p)^gamma."),
        focal_alpha: float = typer.Option(default("focal_alpha"), "--focal-alpha", help="--loss focal: weight of "
                                          "the positives, 1 - alpha of the negatives (sigmoid heads)."),
        tile_width: int = typer.Option(None, "--tile-width", help="Train on tiles this wide (pixels of --image-size,"
                                       " a multiple of 32), labelled from the masks inside them; score an image as "
                                       "the largest output over its tiles. Keeps thin defects at a large "
                                       "--image-size (e.g. 256x1600 with 256) for the cost of a small one."),
        paste: float = typer.Option(None, "--paste", help=PASTE_HELP + f" (default: {default('paste', task):g})"),
        head_prior: bool = typer.Option(default("head_prior"), "--head-prior/--no-head-prior", help="Start each "
                                        "output at its share of positive training draws (under --sampler) instead "
                                        "of 0.5; not the softmax head of --protocol seed."),
        frame_norm: float = typer.Option(default("frame_norm"), "--frame-norm", help="At inference, BatchNorm "
                                         "normalises each frame with this weight (0..1) of its own statistics "
                                         "and the rest of the training ones; thresholds are tuned so. For a "
                                         "model trained on synthetic steel that runs on real steel: 0.5."),
        mask_aux: float = typer.Option(None, "--mask-aux", help="Weight of a training-only loss in which the "
                                       "classifier's stride-16 features predict where each class's mask lies: the "
                                       "masks show it which mark is the defect. 0: off. The saved model is the plain "
                                       f"classifier (default: {default('mask_aux', task):g}; 0 without augmentation, "
                                       "with --tile-width or --pseudo"
                                       + (", under --protocol seed)" if task == "multiclass" else ")")),
        mask_classes: str = typer.Option(None, "--mask-classes", help="Step 2 under --mask-aux: the classes whose "
                                         "masks its loss learns, as 2,3,4; the others learn from their labels alone "
                                         f"(default: {','.join(map(str, default('mask_classes', task)))})."),
        rare_threshold: str = typer.Option(None, "--rare-threshold", help="Step 2's threshold for a class with 1-4 "
                                           "validation images: f1 (F1-optimal) or break-even (calls as many "
                                           "validation images that class as hold it; default: "
                                           f"{default('rare_threshold', task)})."),
        augment: str = AUGMENT,
        freeze_encoder_epochs: int = FREEZE,
        precision: str = PRECISION,
        channels_last: bool = CHANNELS_LAST,
        compile_: bool = COMPILE,
    ) -> None:
        _run(build_config(task, data, out_dir, protocol=protocol, tile_width=tile_width, paste=paste,
                          head_prior=head_prior, frame_norm=frame_norm, mask_aux=mask_aux, mask_classes=mask_classes, rare_threshold=rare_threshold,
                          per_class=per_class,
                          epochs=epochs, batch_size=batch_size, lr=lr, warmup=warmup, image_size=image_size, arch=arch, seed=seed, device=device,
                          workers=workers, resume=resume, weights=weights, init=init, folds=folds, pseudo=pseudo,
                          teacher=teacher, pseudo_confidence=pseudo_confidence, pseudo_share=pseudo_share,
                          sampler=sampler, loss=loss, focal_gamma=focal_gamma, focal_alpha=focal_alpha,
                          **_held_out(val_fraction, test_fraction), **_small_data(augment, freeze_encoder_epochs),
                          **_speed(precision, channels_last, compile_)))

    command.__doc__ = {
        "binary": "Step 1: defect or clean (BCE).",
        "multiclass": "Step 2: which defect class (softmax under --protocol seed, 4 sigmoids under full).",
    }[task]
    return command


train_app.command("binary")(_classifier("binary"))
train_app.command("multiclass")(_classifier("multiclass"))


@train_app.command("segment")
def segment(
    data: Path = DATA,
    out_dir: Path = OUT,
    epochs: int = EPOCHS,
    batch_size: int = typer.Option(default("batch_size", "segment"), "--batch-size"),
    lr: float = LR,
    warmup: float = typer.Option(default("warmup", "segment"), "--warmup", help=WARMUP_HELP),
    image_size: str = typer.Option(_size("segment"), "--image-size", help="HxW the whole image is resized to (full size by default)."),
    crop_width: str = typer.Option("..".join(map(str, default("crop_width"))), "--crop-width", help="Training crop widths MIN..MAX in pixels of --image-size (one width per epoch; 'none': whole images)."),
    arch: str = typer.Option(default("arch", "segment"), "--arch", help="unet_ or fpn_ with resnet18, resnet34, resnet50 or resnext50 (e.g. fpn_resnet50)."),
    seed: int = SEED,
    device: str = DEVICE,
    workers: int = WORKERS,
    resume: bool = RESUME,
    weights: Path = WEIGHTS,
    init: Path = INIT,
    folds: int = FOLDS,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    pseudo: Path = PSEUDO,
    teacher: Path = TEACHER,
    pseudo_confidence: float = PSEUDO_CONFIDENCE,
    pseudo_share: float = PSEUDO_SHARE,
    pseudo_pixel_share: float = typer.Option(default("pseudo_pixel_share"), "--pseudo-pixel-share", help="Keep an "
                                             "image only when this share of its pixels is confident."),
    pseudo_gate: Path = typer.Option(default("pseudo_gate"), "--pseudo-gate", help="Binary (step 1) run: drop the "
                                     "images it is unsure of; those it calls clean get empty masks."),
    sampler: str = typer.Option(default("sampler", "segment"), "--sampler", help=SAMPLER_HELP),
    loss: str = typer.Option(default("loss", "segment"), "--loss", help="bce_dice or lovasz (BCE + Lovasz hinge per class)."),
    paste: float = typer.Option(default("paste", "segment"), "--paste", help=PASTE_HELP),
    augment: str = AUGMENT,
    freeze_encoder_epochs: int = FREEZE,
    precision: str = PRECISION,
    channels_last: bool = CHANNELS_LAST,
    compile_: bool = COMPILE,
) -> None:
    """Segmenter: UNet or FPN, BCE + Dice on random crops; post-processing tuned on validation; Kaggle Dice on test."""
    from steelinspect.train.segment import parse_crop_widths

    _run(build_config("segment", data, out_dir, epochs=epochs, batch_size=batch_size, lr=lr, warmup=warmup, image_size=image_size,
                      crop_width=parse_crop_widths(crop_width), arch=arch, seed=seed, device=device, workers=workers,
                      resume=resume, weights=weights, init=init, folds=folds, pseudo=pseudo, teacher=teacher,
                      pseudo_confidence=pseudo_confidence, pseudo_share=pseudo_share,
                      pseudo_pixel_share=pseudo_pixel_share, pseudo_gate=pseudo_gate, sampler=sampler, loss=loss,
                      paste=paste, **_held_out(val_fraction, test_fraction),
                      **_small_data(augment, freeze_encoder_epochs), **_speed(precision, channels_last, compile_)))


def evaluate(
    run_dirs: list[Path] = typer.Argument(..., help="Run directory of a trained model, a --folds parent, or "
                                          "several run directories (an ensemble: probabilities averaged)."),
    data: Path = typer.Option(..., "--data", help="Labelled DATA_DIR to score on."),
    out_json: Path = typer.Option(None, "--out", help="Where to write the metrics (default RUN_DIR/evaluation.json)."),
    device: str = DEVICE,
    workers: int = WORKERS,
) -> None:
    """Recompute a run's metrics on a labelled dataset (its own splits when it is the training data)."""
    from steelinspect.io import write_json
    from steelinspect.runs.files import EVALUATION_FILE
    from steelinspect.train.evaluate import evaluate as run_evaluate

    from steelinspect.errors import ConfigError

    if len(run_dirs) > 1 and out_json is None:
        raise ConfigError("several run directories: say where to write the metrics with --out")
    run_dir = runs_arg(run_dirs)
    metrics = run_evaluate(run_dir, data, device=device, workers=workers)
    target = out_json or run_dirs[0] / EVALUATION_FILE
    write_json(target, metrics)
    table = Table(title=f"{' + '.join(map(str, run_dirs))} on {data}")
    keys = [k for k in ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "dice_kaggle") if
            any(isinstance(m, dict) and k in m for m in metrics.values())]
    table.add_column("split")
    for key in keys:
        table.add_column(key, justify="right")
    for split, m in metrics.items():
        if isinstance(m, dict) and "n" in m or (isinstance(m, dict) and "loss" in m):
            table.add_row(split, *("–" if m.get(k) is None else f"{m[k]:.4f}" for k in keys))
    out.print(table)
    _print_per_class(metrics)
    if metrics.get("trained_left_out"):
        out.print(f"left out {metrics['trained_left_out']} image(s) the run trained on (matched by name)")
    out.print(f"wrote {target}")


def _print_per_class(metrics: dict) -> None:
    """Step 2's classes one by one, each beside the F1 of naming it on every image of the split."""
    from steelinspect.metrics.classification import at_chance_warning, classes_at_chance

    splits = {name: m for name, m in metrics.items() if isinstance(m, dict) and m.get("per_class")}
    if not splits:
        return
    table = Table(title="per class (chance: the F1 of naming the class on every image)")
    for column in ("split", "class", "precision", "recall", "f1", "chance", "support", "roc_auc"):
        table.add_column(column, justify="left" if column in ("split", "class") else "right")
    for name, m in splits.items():
        for class_id, c in m["per_class"].items():
            auc = "–" if c.get("roc_auc") is None else f"{c['roc_auc']:.4f}"
            table.add_row(name, class_id, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
                          f"{c['chance_f1']:.4f}", str(c["support"]), auc)
    out.print(table)
    for name, m in splits.items():
        weak = classes_at_chance(m)
        if weak:
            out.print(f"warning: on {name}, {at_chance_warning(weak)}")


def tune_gate(
    segment: Path = typer.Argument(..., help="Run directory of a segment model, or a --folds parent (tuned on its "
                                   "out-of-fold predictions); its post-processing is re-tuned."),
    binary: list[Path] = typer.Option(..., "--binary", help="Run directory of the step 1 model, or a --folds parent "
                                      "(repeat for several runs averaged)."),
    multiclass: list[Path] = typer.Option(..., "--multiclass", help="Run directory of the step 2 model, or a --folds "
                                          "parent (repeat for several runs averaged)."),
    data: Path = typer.Option(..., "--data", help="The DATA_DIR the segment run was trained on."),
    class_gate: str = typer.Option("drop", "--class-gate", help="drop (step 1 and step 2 gate) or off (step 1 only)."),
    device: str = DEVICE,
) -> None:
    """Re-tune the segmenter's thresholds and minimum areas on its validation split with the classifiers gating
    it, as `predict` does; score its test split; store the setting in the segment run."""
    from steelinspect.cli.progress import progress_bar
    from steelinspect.cli.score_cmds import score_table
    from steelinspect.infer.cascade import PredictConfig
    from steelinspect.io import read_json
    from steelinspect.runs.files import SPLITS_FILE
    from steelinspect.tuning.gate import tune_with_gate

    splits = read_json(segment / SPLITS_FILE) if (segment / SPLITS_FILE).is_file() else {}
    # A --folds parent scores every non-test image once (out of fold) and its test split.
    total = len(splits.get("val", []) or splits.get("train", [])) + len(splits.get("test", []))
    with progress_bar("tuning", total) as advance:
        result = tune_with_gate(segment, runs_arg(binary), runs_arg(multiclass), data, class_gate,
                                PredictConfig(device=device), on_image=advance)
    out.print(score_table(result.reports["gated_tuned"], title=f"{segment}: test split, gated ({class_gate}), re-tuned"))
    r = result.reports
    out.print(f"test Kaggle Dice: all-empty {r['alone'].dice_empty_baseline:.4f}; segmenter alone "
              f"{r['alone'].dice_kaggle:.4f}; gated {r['gated'].dice_kaggle:.4f}; gated and re-tuned "
              f"{r['gated_tuned'].dice_kaggle:.4f}")
    out.print(f"stored in {segment}: thresholds {list(result.postprocess.thresholds)}, minimum areas "
              f"{list(result.postprocess.min_areas)}")


def tune_bands(
    binary: Path = typer.Option(..., "--binary", help="Run directory of the step 1 model (step 1's bands go here)."),
    multiclass: Path = typer.Option(..., "--multiclass", help="Run directory of the step 2 model (the classes' bands go here)."),
    data: Path = typer.Option(..., "--data", help="The DATA_DIR the runs were trained on (their validation splits "
                              "are used), or any other labelled DATA_DIR, e.g. the plant's reviewed frames from "
                              "export-reviewed (all its images are used)."),
    target_recall: float = typer.Option(0.99, "--target-recall", help="Share of the true positives T1 must send out of OK."),
    target_precision: float = typer.Option(None, "--target-precision", help="T2: the smallest threshold whose NG band reaches this precision (default 0.95)."),
    review_rate: float = typer.Option(None, "--review-rate", help="T2 instead: the threshold that puts at most this share of the images into REVIEW."),
    device: str = DEVICE,
    engine: str = typer.Option("auto", "--engine", help="As predict's: the scores are tuned on what predict computes."),
    batch_size: int = typer.Option(16, "--batch-size"),
    workers: int = typer.Option(4, "--workers", help="Threads decoding images ahead of the model."),
) -> None:
    """Tune the OK / REVIEW / NG thresholds (T1, T2) of step 1 and of each class on the runs' validation splits,
    or on another labelled set (the plant's reviewed frames); write bands.json and bands.png into both runs
    (predict --db, serve --db and watch use them)."""
    from steelinspect.cli.progress import progress_bar
    from steelinspect.infer.cascade import PredictConfig
    from steelinspect.tuning.bands import BandTargets, tune_bands as run_tuning

    if target_precision is None and review_rate is None:
        target_precision = 0.95
    targets = BandTargets(recall=target_recall, precision=target_precision, review_rate=review_rate)
    targets.validate()  # before any model loads
    config = PredictConfig(batch_size=batch_size, workers=workers, device=device, engine=engine)
    with progress_bar("scoring the images to tune on", None) as advance:
        result = run_tuning(binary, multiclass, data, targets, config, on_image=advance)
    on = "validation" if result.step1_split == "val" else str(data)
    table = Table(title=f"Bands tuned on {on} (OK: p < T1, NG: p > T2, REVIEW between)")
    table.add_column("decision", no_wrap=True)
    for col in ("T1", "T2", "images", "OK", "REVIEW", "NG", "recall", "NG precision", "missed"):
        table.add_column(col, justify="right")

    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}%"

    for name, d in [("step 1", result.step1), *((f"class {c}", d) for c, d in result.classes.items())]:
        c = d.cost
        table.add_row(name, f"{d.t1:.4f}", f"{d.t2:.4f}", str(c["images"]), pct(c["share_ok"]),
                      pct(c["share_review"]), pct(c["share_ng"]), pct(c["recall"]), pct(c["precision"]),
                      str(c["missed"]))
    out.print(table)
    for class_id, why in result.skipped.items():
        out.print(f"class {class_id} not banded: {why}")
    out.print("wrote " + ", ".join(map(str, result.files)))


def ensemble(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more classifier run directories trained on one DATA_DIR "
                                          "with one split (same --seed and --protocol); --arch, --image-size and "
                                          "--tile-width may differ."),
    out_dir: Path = typer.Option(..., "--out", help="The ensemble folder to create (members are referred to by "
                                 "relative paths: move it with them)."),
    device: str = DEVICE,
    workers: int = WORKERS,
    batch_size: int = typer.Option(16, "--batch-size"),
) -> None:
    """Make several classifier runs one model: probabilities averaged, thresholds tuned on the validation split
    they share, scored on their test split. Every command that takes a run takes the folder."""
    from steelinspect.io import read_json
    from steelinspect.runs.files import METRICS_FILE
    from steelinspect.tuning.ensemble import combine_runs

    parent = combine_runs(run_dirs, out_dir, device=device, batch_size=batch_size, workers=workers, say=out.print)
    metrics = read_json(parent / METRICS_FILE)
    if metrics.get("test"):
        key, members = next(iter(metrics["members_test"].items()))
        table = Table(title=f"test split {key}")
        table.add_column("model")
        table.add_column(key, justify="right")
        for member, value in members.items():
            table.add_row(member, "–" if value is None else f"{value:.4f}")
        table.add_row("the ensemble", f"{metrics['test'][key]:.4f}")
        out.print(table)
    out.print(f"ensemble folder: {parent}")


def adapt(
    run_dir: Path = typer.Argument(..., help="A run directory (binary, multiclass or segment) or an ensemble."),
    images: list[Path] = typer.Option(..., "--images", help="Unlabelled frames of the plant's camera: a folder or "
                                      "files (repeatable); clean frames included, as the model meets them."),
    out_dir: Path = typer.Option(..., "--out", help="The adapted run directory to create (RUN is not changed)."),
    max_frames: int = typer.Option(1000, "--max-frames", help="At most this many frames (a seeded sample of more)."),
    seed: int = typer.Option(0, "--seed", help="Fixes which frames the sample takes."),
    device: str = DEVICE,
    workers: int = WORKERS,
    batch_size: int = typer.Option(16, "--batch-size"),
) -> None:
    """Re-measure a run's BatchNorm statistics on unlabelled frames of the plant's own steel (AdaBN): no labels, no
    weights trained, thresholds kept. For a run trained on synthetic steel meeting real steel. An ensemble (--folds
    parent or `ensemble` folder) is adapted member by member into one new folder."""
    from steelinspect.cli.progress import progress_bar
    from steelinspect.data.images import list_images
    from steelinspect.runs.ensemble import member_dirs
    from steelinspect.tuning.adapt import adapt_run

    frames = runs_arg(images)
    members = len(member_dirs(run_dir))  # an ensemble reads the frames once per member
    with progress_bar("adapting", members * min(len(list_images(frames)), max_frames)) as advance:
        adapt_run(run_dir, frames, out_dir, max_frames=max_frames, seed=seed, batch_size=batch_size, device=device,
                  workers=workers, say=out.print, on_image=advance)


def runs_arg(paths: list[Path]) -> Path | list[Path]:
    """What a repeatable run option means to the library: one run directory (or fold parent) as itself, several as
    the list (an ensemble)."""
    return paths[0] if len(paths) == 1 else list(paths)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command()(evaluate)
    app.command("tune-gate")(tune_gate)
    app.command("tune-bands")(tune_bands)
    app.command()(ensemble)
    app.command()(adapt)
