"""Typed training configuration; written to RUN_DIR/config.json and read back on resume."""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from steelinspect.constants import CLASS_IDS
from steelinspect.errors import ConfigError

TASKS = ("binary", "multiclass", "segment")
PRECISIONS = ("fp32", "bf16", "fp16")
# --augment: the training augmentation's preset (data/dataset.py AUGMENT_PRESETS, data/seg_dataset.py SEG_AUGMENT_PRESETS).
AUGMENT_PRESETS = ("standard", "strong")
# What a setting left as None means, per task. Every training default is here or in TrainConfig below, and
# nowhere else: the CLI and SegmentTask read them through default().
TASK_DEFAULTS = {
    "binary": {"arch": "vgg", "image_size": (256, 512), "batch_size": 16, "sampler": "natural", "loss": "bce",
               "warmup": 0.0, "paste": 0.0, "mask_aux": 0.0, "mask_classes": CLASS_IDS, "rare_threshold": "f1"},
    # Step 2 draws its images class-balanced and trains with the focal loss: on held-out synthetic data at 16
    # epochs, macro F1 0.678 (mean of three run seeds, 0.671-0.689) against 0.563 (0.433-0.678) for the natural
    # sampler with BCE, 0.582 balanced with BCE, 0.532 natural with focal (docs/rare-classes.md). Its learning
    # rate warms up over the first epoch: 0.635 against 0.566 (mean of three run seeds on the CPU, each higher).
    # It also learns where classes 2-4 lie (--mask-aux 2 --mask-classes 2,3,4) and breaks even on a class with
    # 1-4 validation images: on the same bench, 0.678 (0.548-0.818, class 2 above chance on every seed) against
    # 0.562 without, and 0.464 for natural + BCE. Class 1's cells are left out: with them, trained on synthetic
    # steel, step 2 calls the real defects class 1 and names a class that is there on 58.9% of the real images
    # (three seeds, issue 13's budget) against 77.8% (docs/rare-classes.md, "On real steel").
    "multiclass": {"arch": "vgg", "image_size": (256, 512), "batch_size": 16, "sampler": "balanced", "loss": "focal",
                   "warmup": 1.0, "paste": 0.0, "mask_aux": 2.0, "mask_classes": (2, 3, 4),
                   "rare_threshold": "break-even"},
    # The segmenter pastes a defect of a uniformly drawn class into half of its training images: at 3 epochs on
    # 2,000 images it then learns classes 1 and 4 on every run seed tried (3 of 3; 1 of 3 without), and scores real
    # class 4 0.287 (mean of three seeds) against 0.085 (docs/transfer.md, "The segmenter at the budget").
    "segment": {"arch": "unet_resnet18", "image_size": (256, 1600), "batch_size": 8, "sampler": "natural",
                "loss": "bce_dice", "warmup": 0.0, "paste": 0.5, "mask_aux": 0.0, "mask_classes": CLASS_IDS,
                "rare_threshold": "f1"},
}
# The capstone's protocol keeps its own training for the classifiers (N images per class already balance it).
PROTOCOL_DEFAULTS = {"seed": {"sampler": "natural", "loss": "bce", "warmup": 0.0, "mask_aux": 0.0,
                              "mask_classes": CLASS_IDS, "rare_threshold": "f1"}}
# --loss per task. Classifiers: bce (BCE with class-frequency positive weights; cross-entropy for the softmax
# head under --protocol seed) or focal (train/losses.py). Segmenter: bce_dice or lovasz (BCE + Lovasz hinge).
LOSSES = {"binary": ("bce", "focal"), "multiclass": ("bce", "focal"), "segment": ("bce_dice", "lovasz")}
RARE_THRESHOLDS = ("f1", "break-even")
# What a config.json written before --sampler, --loss, --warmup, --paste, --mask-aux, --mask-classes and
# --rare-threshold existed trained with.
LEGACY = {"sampler": "natural", "loss": {"binary": "bce", "multiclass": "bce", "segment": "bce_dice"}, "warmup": 0.0,
          "paste": 0.0, "mask_aux": 0.0, "mask_classes": CLASS_IDS, "rare_threshold": "f1"}

# What a run may continue with changed (--resume): how long and where it trains, not what it learns.
RESUMABLE = ("epochs", "resume", "workers", "device", "channels_last", "compile")


@dataclass
class TrainConfig:
    task: str  # "binary" | "multiclass" (step 2; multi-label under the full protocol) | "segment"
    data: Path
    out: Path
    protocol: str = "full"  # "full" (every image) | "seed" (the capstone's N per class)
    epochs: int = 10
    batch_size: int | None = None  # None: the task's default (TASK_DEFAULTS)
    lr: float = 1e-3
    image_size: tuple[int, int] | None = None
    arch: str | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    per_class: int = 180
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    weights: Path | None = None
    init: Path | None = None  # a run directory whose weights (where shapes match) start this model
    resume: bool = False
    augment: bool = True
    augment_preset: str = "standard"  # --augment: "standard" | "strong" (small data: gamma, blur, noise, shift/scale)
    # Small data: the encoder (feature extractor) frozen, its BatchNorm in eval mode, for the first N epochs,
    # so a new head settles on pretrained features before they move (train/freeze.py). 0: never frozen.
    freeze_encoder_epochs: int = 0
    # The learning rate rises linearly from near 0 to its scheduled value over the first `warmup` epochs' steps
    # (train/warmup.py). 0: none. None: the task's default (TASK_DEFAULTS).
    warmup: float | None = None
    crop_width: tuple[int, int] | None = (384, 800)  # segment: crop widths (px of image_size); None = whole
    # Classifiers: train on tiles this wide (px of image_size), labelled from the masks inside them, and score a
    # whole image as the largest logit over its tiles (models/tiling.py). None: whole images.
    tile_width: int | None = None
    # The share of training images that get one more defect (its mask too, for the segmenter and tiles), cut
    # from another training image, of a class drawn uniformly (data/paste.py). 0: none. None: the task's default
    # (TASK_DEFAULTS), 0 without augmentation (a paste is one).
    paste: float | None = None
    # Classifiers' sigmoid heads: the output layer's bias starts at each output's share of positive training draws
    # (under the sampler) instead of 0.5 (models/tiling.py start_at_prior).
    head_prior: bool = False
    # Classifiers: at inference, every BatchNorm layer normalises each frame with this weight of the frame's own
    # statistics and the rest of the training ones (models/frame_norm.py); thresholds are tuned that way too. 0:
    # plain BatchNorm. For a step 1 trained on synthetic steel that must run on real steel (docs/transfer.md).
    frame_norm: float = 0.0
    # Classifiers' sigmoid heads: the weight of an auxiliary loss, during training only, in which a 1x1 convolution
    # on the stride-16 feature map predicts where each class's mask lies (models/mask_probe.py, data/mask_grid.py):
    # the masks tell the features which mark is the defect. 0: off. The saved model is the plain classifier.
    # None: the task's default (TASK_DEFAULTS: 2 for step 2, 0 for step 1), 0 where the mask loss cannot apply
    # (no augmentation, --tile-width, --pseudo, --protocol seed); an explicit weight there is refused.
    mask_aux: float | None = None
    # Step 2 under --mask-aux: the classes whose mask cells the probe learns (the others learn from their labels
    # alone). Step 1's probe learns the union of every class's mask. None: the task's default.
    mask_classes: tuple[int, ...] | None = None
    # Step 2's threshold for a class with 1-4 validation images: "f1" (F1-optimal, as for every other class) or
    # "break-even" (calls as many validation images that class as hold it; metrics/classification.py). None: the
    # task's default.
    rare_threshold: str | None = None
    # K-fold training (train/folds.py): folds > 1 makes `out` a parent of K runs fold_1..fold_K; in fold run k,
    # fold = k is the fold it validates on (0: not a fold run). The test split stays out of every fold.
    folds: int = 1
    fold: int = 0
    # Pseudo-labelling (pseudo/): unlabelled images labelled by a teacher run, kept only when it is confident,
    # mixed into every training batch. The rules are pseudo/label.py's; what was kept is RUN_DIR/pseudo.json.
    pseudo: Path | None = None  # folder of unlabelled images (never in DATA_DIR, never in validation or test)
    teacher: Path | None = None  # run directory that labels them (the student's own head; segment: a segmenter)
    pseudo_confidence: float = 0.9  # every probability >= c or <= 1 - c (per class; per pixel for the segmenter)
    pseudo_share: float = 0.25  # share of every training batch that is pseudo-labelled
    pseudo_pixel_share: float = 0.99  # segment: share of an image's pixels that must be confident
    pseudo_gate: Path | None = None  # segment: a binary (step 1) run; its unsure images are dropped, clean ones empty
    sampler: str | None = None  # "natural" (each image once per epoch) | "balanced" (data/sampling.py)
    loss: str | None = None  # one of LOSSES[task]
    focal_gamma: float = 2.0  # --loss focal: (1 - p_t)^gamma
    focal_alpha: float | None = 0.25  # --loss focal: weight of the positives (negatives 1 - alpha); None: none
    # Training speed (evaluation and final metrics stay fp32 whatever these are):
    precision: str = "fp32"  # "fp32" | "bf16" (autocast, CPU or CUDA) | "fp16" (autocast + GradScaler, CUDA only)
    channels_last: bool = False  # conv models and batches in channels-last memory format
    compile: bool = False  # torch.compile the model for the training steps

    def __post_init__(self) -> None:
        if self.sampler is None and self.pseudo is not None:
            self.sampler = "natural"  # the balanced sampler does not draw pseudo-labelled images yet
        if self.paste is None and not self.augment:
            self.paste = 0.0
        if self.mask_aux is None and (not self.augment or self.tile_width is not None or self.pseudo is not None):
            self.mask_aux = 0.0  # the default mask loss needs whole, augmented, labelled training images
        defaults = dict(TASK_DEFAULTS.get(self.task, {}))
        if self.task != "segment":
            defaults.update(PROTOCOL_DEFAULTS.get(self.protocol, {}))
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    def validate(self) -> None:
        from steelinspect.models.factory import ARCHS, CLASSIFIERS, SEGMENTERS, check_frame_norm

        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        fitting = SEGMENTERS if self.task == "segment" else CLASSIFIERS
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown --arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.arch not in fitting:
            raise ConfigError(f"--arch {self.arch!r} cannot train {self.task}; choose one of {', '.join(fitting)}")
        if self.protocol not in ("full", "seed"):
            raise ConfigError(f"--protocol must be 'full' or 'seed', got {self.protocol!r}")
        for name in ("epochs", "batch_size", "per_class"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.folds < 1 or self.folds == 1 and self.fold:
            raise ConfigError(f"--folds must be 1 (no folds) or at least 2, got {self.folds}")
        if not 0 <= self.fold <= self.folds:
            raise ConfigError(f"fold {self.fold} is not one of 1..{self.folds}")
        self._validate_held_out()
        self._validate_pseudo()
        from steelinspect.data.sampling import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.loss not in LOSSES[self.task]:
            raise ConfigError(f"--loss {self.loss!r} cannot train {self.task}; choose one of "
                              f"{', '.join(LOSSES[self.task])}")
        if self.focal_gamma < 0:
            raise ConfigError(f"--focal-gamma must be >= 0, got {self.focal_gamma}")
        if self.focal_alpha is not None and not 0 < self.focal_alpha < 1:
            raise ConfigError(f"--focal-alpha must be in (0, 1), got {self.focal_alpha}")
        self._validate_paste()
        self._validate_head_prior()
        self._validate_mask_aux()
        if self.rare_threshold not in RARE_THRESHOLDS:
            raise ConfigError(f"--rare-threshold must be one of {', '.join(RARE_THRESHOLDS)}, got "
                              f"{self.rare_threshold!r}")
        if self.augment_preset not in AUGMENT_PRESETS:
            raise ConfigError(f"--augment must be one of {', '.join(AUGMENT_PRESETS)}, got {self.augment_preset!r}")
        if not 0 <= self.freeze_encoder_epochs <= self.epochs:
            raise ConfigError(f"--freeze-encoder-epochs must lie in 0..{self.epochs} (--epochs), got "
                              f"{self.freeze_encoder_epochs}")
        if self.freeze_encoder_epochs and self.init is None and self.weights is None:
            raise ConfigError("--freeze-encoder-epochs needs --init or --weights: a frozen random encoder gives the "
                              "head nothing to learn from")
        if not 0 <= self.warmup <= self.epochs:
            raise ConfigError(f"--warmup must lie in 0..{self.epochs} epochs (--epochs), got {self.warmup:g}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        h, w = self.image_size
        if h % 32 or w % 32 or h <= 0 or w <= 0:
            raise ConfigError(f"--image-size {h}x{w}: height and width must be positive multiples of 32")
        self._validate_tiles()
        check_frame_norm(self.frame_norm, self.arch)

    def _validate_held_out(self) -> None:
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"--test-fraction must lie in [0, 1), got {self.test_fraction:g}")
        # --folds validates on each fold in turn, and merges the validation share back into the folds.
        if self.folds == 1 and not 0 < self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must lie in (0, 1): the best epoch and the thresholds are chosen on "
                              f"validation (or --folds K validates on every image once), got {self.val_fraction:g}")
        if not 0 <= self.val_fraction < 1 or self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"--val-fraction {self.val_fraction:g} and --test-fraction {self.test_fraction:g} "
                              "leave no training images: their sum must stay below 1")

    def _validate_tiles(self) -> None:
        if self.tile_width is None:
            return
        if self.task == "segment":
            raise ConfigError("--tile-width is for the classifiers; the segmenter trains on --crop-width crops")
        if self.protocol == "seed":
            raise ConfigError("--tile-width needs --protocol full (a tile may hold no defect, or several classes)")
        if not self.augment:
            raise ConfigError("--tile-width trains on random tiles: it needs augmentation on")
        if self.pseudo is not None:
            raise ConfigError("--tile-width with --pseudo is not supported: tiles are labelled from masks, "
                              "pseudo-labels have none")
        width = self.image_size[1]
        if self.tile_width % 32 or not 32 <= self.tile_width < width:
            raise ConfigError(f"--tile-width must be a multiple of 32 below the --image-size width {width}, "
                              f"got {self.tile_width}")

    def _validate_head_prior(self) -> None:
        if self.head_prior and self.head not in ("binary", "multilabel"):
            raise ConfigError("--head-prior is for the classifiers' sigmoid heads (train binary; train multiclass "
                              "under --protocol full)")

    def _validate_mask_aux(self) -> None:
        if not isinstance(self.mask_aux, (int, float)) or not 0 <= self.mask_aux <= 100:
            raise ConfigError(f"--mask-aux must lie in 0..100 (the weight of the mask loss), got {self.mask_aux!r}")
        if not self.mask_aux:
            if tuple(self.mask_classes) not in (CLASS_IDS, default("mask_classes", self.task)):  # chosen, for nothing
                raise ConfigError("--mask-classes chooses the classes of --mask-aux's loss: it needs --mask-aux W")
            return
        if self.head not in ("binary", "multilabel"):
            raise ConfigError("--mask-aux is for the classifiers' sigmoid heads (train binary; train multiclass "
                              "under --protocol full); the segmenter learns the masks themselves")
        if not self.augment:
            raise ConfigError("--mask-aux trains on the augmented training images: it needs augmentation on")
        if self.tile_width is not None:
            raise ConfigError("--mask-aux with --tile-width is not supported: tiles are already labelled from masks")
        if self.pseudo is not None:
            raise ConfigError("--mask-aux with --pseudo is not supported: pseudo-labelled images have no masks")
        classes = self.mask_classes
        if (not classes or len(set(classes)) != len(classes)
                or not all(isinstance(c, int) and c in CLASS_IDS for c in classes)):
            raise ConfigError(f"--mask-classes must name distinct classes among {', '.join(map(str, CLASS_IDS))}, "
                              f"got {classes!r}")
        if self.head == "binary" and tuple(sorted(classes)) != CLASS_IDS:
            raise ConfigError("--mask-classes is step 2's: step 1's mask loss learns where any defect lies")

    def _validate_paste(self) -> None:
        if not 0.0 <= self.paste <= 1.0:
            raise ConfigError(f"--paste must lie in [0, 1], got {self.paste}")
        if not self.paste:
            return
        if self.head == "multiclass":
            raise ConfigError("--paste needs --protocol full: a pasted defect gives an image a second class, which "
                              "the single-label head of --protocol seed cannot hold")
        if not self.augment:
            raise ConfigError("--paste is a training augmentation: it needs augmentation on")

    def _validate_pseudo(self) -> None:
        if (self.pseudo is None) != (self.teacher is None):
            raise ConfigError("--pseudo IMAGES_DIR and --teacher RUN go together")
        if self.pseudo is not None and self.sampler == "balanced":
            raise ConfigError("--sampler balanced with --pseudo is not supported yet: use --sampler natural")
        if self.pseudo is not None and self.folds > 1:
            raise ConfigError("--pseudo with --folds is not supported yet: train each fold's student on its own, or "
                              "use the --folds parent as the --teacher of a single run")
        if self.pseudo_gate is not None and (self.pseudo is None or self.task != "segment"):
            raise ConfigError("--pseudo-gate is for `train segment --pseudo ... --teacher ...`")
        if not 0.5 < self.pseudo_confidence <= 1.0:
            raise ConfigError(f"--pseudo-confidence must lie in (0.5, 1], got {self.pseudo_confidence}")
        if not 0.0 < self.pseudo_share < 1.0:
            raise ConfigError(f"--pseudo-share must lie in (0, 1), got {self.pseudo_share}")
        if not 0.0 <= self.pseudo_pixel_share <= 1.0:
            raise ConfigError(f"--pseudo-pixel-share must lie in [0, 1], got {self.pseudo_pixel_share}")

    @property
    def head(self) -> str:
        """The model task: binary, multiclass (softmax, seed protocol), multilabel (full protocol) or segment."""
        if self.task == "multiclass":
            return "multiclass" if self.protocol == "seed" else "multilabel"
        return self.task

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
            elif isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key, value in LEGACY.items():  # a setting the run's config.json predates: what it trained with
            values.setdefault(key, value.get(values.get("task")) if isinstance(value, dict) else value)
        for key in ("data", "out"):
            values[key] = Path(values[key])
        for key in ("weights", "init", "pseudo", "teacher", "pseudo_gate"):
            if values.get(key):
                values[key] = Path(values[key])
        for key in ("image_size", "crop_width", "mask_classes"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the run's config ({exc})", path) from None

    def changes_from(self, saved: "TrainConfig", ignore=RESUMABLE) -> list[str]:
        """Each setting where this config differs from the run `saved` trained with, as the run's value and this
        one's (a default changed since the run began, such as --paste or --warmup, is the usual cause)."""
        a, b = saved.to_dict(), self.to_dict()
        return [f"--{k.replace('_', '-')} {a[k]} in the run, {b.get(k)} now"
                for k in a if k not in ignore and a[k] != b.get(k)]

    def check_resumes(self, saved: "TrainConfig", run_dir: Path) -> None:
        """Refuse --resume of a run `saved` with other settings, saying what the run had, so a user can pass it."""
        changed = self.changes_from(saved)
        if changed:
            raise ConfigError(f"--resume with different settings than the run in {run_dir}: {'; '.join(changed)}")


def default(name: str, task: str | None = None):
    """A setting's default: the task's own (TASK_DEFAULTS) where it has one, else TrainConfig's."""
    if name in TASK_DEFAULTS.get(task, {}):
        return TASK_DEFAULTS[task][name]
    spec = next(f for f in fields(TrainConfig) if f.name == name)
    return spec.default if spec.default_factory is MISSING else spec.default_factory()
