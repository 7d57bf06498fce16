"""Prediction settings shared by every inference path (cascade, segmenter, web page, tuning), and the int8
export's (infer/quantize.py). Light to import: the CLI reads the defaults from here."""

from __future__ import annotations

from dataclasses import dataclass

from steelinspect.errors import ConfigError

ENGINES = ("auto", "torch", "onnx", "int8")
PRECISIONS = ("fp32", "bf16")


@dataclass
class PredictConfig:
    batch_size: int = 16
    workers: int = 4
    device: str = "auto"
    engine: str = "auto"  # auto | torch | onnx | int8 (see infer/engines.py)
    precision: str = "fp32"  # fp32 | bf16 (PyTorch autocast; fast on CPUs with AMX or AVX-512 BF16, and on GPUs)
    threads: int | None = None  # model threads of this process (PyTorch and ONNX Runtime); None: their defaults

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown --engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown --precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.precision == "bf16" and self.engine in ("onnx", "int8"):
            raise ConfigError(f"--precision bf16 runs on PyTorch; --engine {self.engine} runs the exported "
                              f"{'int8' if self.engine == 'int8' else 'fp32'} model (use --engine auto or torch)")


ACTIVATIONS = ("auto", "u8", "s8")
KEEP_FLOAT = ("ends", "none")
DEFAULT_TOLERANCE_F1 = 0.01
DEFAULT_TOLERANCE_DICE = 0.003


@dataclass
class Int8Config:
    calibration: int = 32  # validation images the activation ranges are calibrated on
    activations: str = "auto"  # auto | u8 | s8
    keep_float: str = "ends"  # ends | none
    tolerance_f1: float = DEFAULT_TOLERANCE_F1  # largest F1 drop allowed (classifiers)
    tolerance_dice: float = DEFAULT_TOLERANCE_DICE  # largest Kaggle Dice drop allowed (segmenter)
    batch_size: int = 4  # images per ONNX Runtime call while scoring (4 full-size UNet images: ~1.2 GB)
    data: str | None = None  # the run's dataset when it has moved; None: config.json's "data"

    def validate(self) -> None:
        if self.calibration < 1:
            raise ConfigError(f"--calibration must be at least 1 image, got {self.calibration}")
        if self.activations not in ACTIVATIONS:
            raise ConfigError(f"unknown --activations {self.activations!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.keep_float not in KEEP_FLOAT:
            raise ConfigError(f"unknown --keep-float {self.keep_float!r}; choose one of {', '.join(KEEP_FLOAT)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
