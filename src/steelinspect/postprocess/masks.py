"""Segmenter probabilities -> defect masks: per-class threshold, then drop connected components smaller than a
per-class minimum area (the post-processing every top Severstal solution used), optionally gated by classifier
probabilities. Also the per-class areas and bounding boxes written to predictions.csv.

Minimum areas are in pixels of the full 256x1600 image; masks at another resolution scale them by the pixel
ratio, so one saved setting works whatever size the segmenter ran at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE, NUM_CLASSES
from steelinspect.errors import ConfigError

# Starting points at full size (the Kaggle kernels' values): classes 3 and 4 are large, 1 and 2 small.
DEFAULT_MIN_AREAS = (600, 600, 1000, 2000)
DEFAULT_THRESHOLDS = (0.5, 0.5, 0.5, 0.5)
GATE_MODES = ("off", "drop", "scale")


def area_ratio(shape: tuple[int, int]) -> float:
    """Pixels of a mask of `shape` per pixel of the full 256x1600 image: what minimum areas are multiplied by."""
    return (shape[0] * shape[1]) / (IMAGE_SHAPE[0] * IMAGE_SHAPE[1])


@dataclass(frozen=True)
class Component:
    """One connected defect region: bounding box (x, y, width, height) in image pixels and its area."""

    x: int
    y: int
    width: int
    height: int
    area: int


@dataclass
class ClassRegions:
    """What post-processing kept of one class in one image."""

    class_id: int
    area: int = 0
    components: list[Component] = field(default_factory=list)

    def boxes_text(self) -> str:
        """'x y w h;x y w h' (empty when no defect): compact and CSV-safe."""
        return ";".join(f"{c.x} {c.y} {c.width} {c.height}" for c in self.components)


@dataclass(frozen=True)
class PostProcess:
    """Per-class probability threshold and minimum component area (at full size), plus optional gating by
    classifier probabilities:

    - gate "drop":  a class mask is dropped when the classifier's probability for it is below `gate_thresholds`.
    - gate "scale": the class's minimum area is divided by that probability (p=0.5 doubles it), so weakly
      supported masks must be larger to survive.
    """

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    min_areas: tuple[int, ...] = DEFAULT_MIN_AREAS
    gate: str = "off"
    gate_thresholds: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        for name in ("thresholds", "min_areas", "gate_thresholds"):
            values = tuple(getattr(self, name))
            if len(values) != NUM_CLASSES:
                raise ConfigError(f"{name} needs {NUM_CLASSES} values (one per class), got {len(values)}")
            object.__setattr__(self, name, values)
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds + self.gate_thresholds):
            raise ConfigError(f"thresholds must lie in [0, 1], got {self.thresholds} / {self.gate_thresholds}")
        if any(a < 0 for a in self.min_areas):
            raise ConfigError(f"minimum areas must be >= 0, got {self.min_areas}")
        if self.gate not in GATE_MODES:
            raise ConfigError(f"gate {self.gate!r} is not one of {', '.join(GATE_MODES)}")

    def to_dict(self) -> dict:
        """JSON form (lists, as it reads back from metrics.json and model.pt)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "PostProcess":
        known = {k: data[k] for k in ("thresholds", "min_areas", "gate", "gate_thresholds") if k in data}
        if "min_areas" in known:
            known["min_areas"] = tuple(int(a) for a in known["min_areas"])
        return cls(**known)

    def with_gate(self, gate: str, gate_thresholds=None) -> "PostProcess":
        return PostProcess(self.thresholds, self.min_areas, gate, tuple(gate_thresholds or self.gate_thresholds))

    def effective_min_areas(self, shape: tuple[int, int], class_probs=None) -> list[float]:
        """Minimum areas in pixels of a mask of `shape`, after 'scale' gating."""
        ratio = area_ratio(shape)
        areas = [a * ratio for a in self.min_areas]
        if self.gate == "scale" and class_probs is not None:
            areas = [a / max(float(p), 1e-3) for a, p in zip(areas, class_probs)]
        return areas

    def __call__(self, probs: np.ndarray, class_probs=None) -> tuple[np.ndarray, list[ClassRegions]]:
        """probs float (4, H, W) in [0, 1] (or uint8 0-255) -> (bool masks (4, H, W), regions per class).

        `class_probs` (4 classifier probabilities) is used only when the gate is not "off".
        """
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[0] != NUM_CLASSES:
            raise ValueError(f"probabilities must be ({NUM_CLASSES}, H, W), got {probs.shape}")
        scale = 255.0 if probs.dtype == np.uint8 else 1.0
        gated = self.gate != "off" and class_probs is not None
        min_areas = self.effective_min_areas(probs.shape[1:], class_probs if gated else None)
        masks = np.zeros(probs.shape, dtype=bool)
        regions = []
        for c, class_id in enumerate(CLASS_IDS):
            if gated and self.gate == "drop" and float(class_probs[c]) < self.gate_thresholds[c]:
                regions.append(ClassRegions(class_id))
                continue
            binary = probs[c] > self.thresholds[c] * scale
            masks[c], kept = remove_small(binary, min_areas[c])
            regions.append(ClassRegions(class_id, sum(k.area for k in kept), kept))
        return masks, regions


def components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components (8-connectivity) of a bool mask: (labels int32 (H, W), stats (n, 5)) where row
    i-1 of stats is component i's (x, y, width, height, area). Label 0 is background."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    return labels, stats[1:n]


def remove_small(binary: np.ndarray, min_area: float) -> tuple[np.ndarray, list[Component]]:
    """Drop components with fewer than `min_area` pixels; returns the kept mask and its components."""
    if not binary.any():
        return np.zeros(binary.shape, dtype=bool), []
    labels, stats = components(binary)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    kept = [Component(*(int(v) for v in row)) for row in stats[keep]]
    if keep.all():
        return binary.astype(bool, copy=True), kept
    # Lookup table over labels: background and dropped components map to False.
    lut = np.concatenate(([False], keep))
    return lut[labels], kept
