"""Prediction settings shared by every inference path (cascade, segmenter, web page, tuning)."""

from __future__ import annotations

from dataclasses import dataclass

from steelinspect.errors import ConfigError

ENGINES = ("auto", "torch", "onnx")
PRECISIONS = ("fp32", "bf16")


@dataclass
class PredictConfig:
    batch_size: int = 16
    workers: int = 4
    device: str = "auto"
    engine: str = "auto"  # auto | torch | onnx (see infer/engines.py)
    precision: str = "fp32"  # fp32 | bf16 (PyTorch autocast; fast on CPUs with AMX or AVX-512 BF16, and on GPUs)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown --engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown --precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.precision == "bf16" and self.engine == "onnx":
            raise ConfigError("--precision bf16 runs on PyTorch; ONNX Runtime runs the exported fp32 model "
                              "(use --engine auto or torch)")
