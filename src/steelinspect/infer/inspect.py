"""Inspect single images in memory: the cascade, and the segmenter when there is one.

This is the per-image API behind the web page (and handy in a notebook): models load once, and `inspect()`
takes a grey image of any size (it is brought to 1600x256 first, with a notice) and returns the verdict, class
probabilities, masks and each defect's area and box.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import resize
from steelinspect.infer.cascade import Cascade, PredictConfig, row_classes
from steelinspect.infer.engines import make_engine
from steelinspect.infer.loader import Batch
from steelinspect.runs.ensemble import load_model


@dataclass
class Defect:
    class_id: int
    area_px: int
    bbox: tuple[int, int, int, int]  # x, y, width, height in pixels of the 1600x256 image

    def to_json(self) -> dict:
        return {"class": self.class_id, "area_px": self.area_px, "bbox": list(self.bbox)}


@dataclass
class Inspection:
    image_id: str
    p_defect: float
    has_defect: bool
    p_class: dict[str, float]
    classes: list[int]
    image: np.ndarray  # the grey image as inspected (1600x256)
    masks: np.ndarray | None  # bool (4, 256, 1600), None without a segmenter
    defects: list[Defect] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "p_defect": self.p_defect,
            "has_defect": self.has_defect,
            "p_class": self.p_class,
            "classes": self.classes,
            "defects": [d.to_json() for d in self.defects],
            "notices": self.notices,
        }


class Inspector:
    """Loaded models plus a lock: several requests may call `inspect()` at once; the model compute itself is
    serialised (PyTorch already uses every core for one batch), decoding and encoding are not."""

    def __init__(self, binary: str | Path, multiclass: str | Path, segment: str | Path | None = None,
                 config: PredictConfig | None = None, tta: bool = False):
        self.config = config or PredictConfig(batch_size=1, workers=1)
        self.cascade = Cascade.from_runs(binary, multiclass, self.config)
        self.segment = None
        if segment is not None:
            from steelinspect.infer.segment_predict import SegmentOptions, SegmentStep

            run = load_model(segment)
            engine = make_engine(run, self.config)
            self.segment = SegmentStep(run, SegmentOptions(tta=tta), engine)
        self.lock = threading.Lock()
        shown = lambda p: str(p) if isinstance(p, (str, Path)) else [str(q) for q in p]  # noqa: E731 (ensembles: lists)
        self.runs = {"binary": shown(binary), "multiclass": shown(multiclass),
                     "segment": None if segment is None else shown(segment)}

    def inspect(self, gray: np.ndarray, image_id: str = "image") -> Inspection:
        notices = []
        if gray.shape[:2] != IMAGE_SHAPE:
            notices.append(f"resized from {gray.shape[1]}x{gray.shape[0]} to {IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]}")
            gray = resize(gray, IMAGE_SHAPE)
        preps = list(dict.fromkeys([*self.cascade.preprocesses, *([self.segment.preprocess] if self.segment else [])]))
        batch = Batch([image_id], [Path(image_id)], {p: p(gray)[None] for p in preps}, [gray])
        with self.lock, torch.inference_mode():
            row = self.cascade.predict_batch(batch)[0]
            result = self.segment(batch.input(self.segment.preprocess), [row])[0] if self.segment else None
        masks = None
        defects: list[Defect] = []
        if result is not None:
            masks = result.masks
            defects = [Defect(r.class_id, c.area, (c.x, c.y, c.width, c.height))
                       for r in result.regions for c in r.components]
        return Inspection(
            image_id=image_id,
            p_defect=row["p_defect"],
            has_defect=row["has_defect"],
            p_class={str(c): row[f"p_class_{c}"] for c in CLASS_IDS},
            classes=row_classes(row),
            image=gray,
            masks=masks,
            defects=defects,
            notices=notices,
        )

