"""The full pipeline over images: the two-step cascade, then the segmenter on the whole image, gated by the
cascade, post-processed with the run's tuned thresholds and minimum areas.

Outputs, all written in one streaming pass: predictions.csv (the cascade's columns plus, per class, the defect
area in pixels and the bounding boxes of its regions), a Kaggle submission (one row per image and class), and
optionally PNG overlays in the class colours.

Gating (the top Kaggle solutions' recipe):
- an image the binary step calls clean gets no masks at all;
- `class_gate` "drop" (the default): a class mask is kept only when the cascade's step 2 chose that class
  (measured on the demo's held-out images: Kaggle Dice 0.881 against 0.864 with "off");
  "scale": the class's minimum area is divided by step 2's probability for it (p = 0.5 doubles it);
  "off": step 2 does not touch the masks.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE, NUM_CLASSES
from steelinspect.data.images import list_images, resize
from steelinspect.errors import ConfigError, Problem, RunError
from steelinspect.infer.cascade import (
    PREDICTION_COLUMNS,
    Cascade,
    PredictConfig,
    PredictStats,
    row_classes,
    skipped,
    write_predictions,
)
from steelinspect.infer.engines import make_engine
from steelinspect.infer.loader import iter_batches
from steelinspect.infer.submission import SubmissionWriter
from steelinspect.postprocess.masks import GATE_MODES, ClassRegions, PostProcess
from steelinspect.postprocess.segmenter import segment_probs, to_full_size
from steelinspect.runs.ensemble import load_model
from steelinspect.runs.store import LoadedRun

SEGMENT_COLUMNS = [*(f"area_{c}" for c in CLASS_IDS), *(f"boxes_{c}" for c in CLASS_IDS)]


@dataclass
class SegmentOptions:
    tta: bool = False
    class_gate: str = "drop"  # off | drop | scale
    binary_gate: bool = True  # no masks on images the binary step calls clean

    def validate(self) -> None:
        if self.class_gate not in GATE_MODES:
            raise ConfigError(f"--class-gate must be one of {', '.join(GATE_MODES)}, got {self.class_gate!r}")


@dataclass
class SegmentResult:
    masks: np.ndarray  # bool (4, 256, 1600)
    regions: list[ClassRegions]


class SegmentStep:
    """A segment run on an engine: preprocessed batch (+ the cascade's rows) -> masks, areas, boxes."""

    def __init__(self, run: LoadedRun, options: SegmentOptions, engine):
        if run.head != "segment":
            raise RunError(f"--segment needs a segment run, this one is {run.head!r}", run.run_dir)
        options.validate()
        self.run, self.options, self.engine = run, options, engine
        self.postprocess = PostProcess.from_dict(run.postprocess or {})

    @property
    def preprocess(self):
        return self.run.preprocess

    def __call__(self, x: np.ndarray, rows: list[dict] | None = None) -> list[SegmentResult]:
        """Masks for a preprocessed batch; with the cascade's `rows`, gated by them. The segmenter runs only on
        the images step 1 calls defective (the others get no masks), so clean plates cost no segmentation."""
        gated = rows is not None and self.options.binary_gate
        todo = [i for i in range(len(x)) if not gated or rows[i]["has_defect"]]
        empty = np.zeros((NUM_CLASSES, *IMAGE_SHAPE), dtype=bool)
        results = [SegmentResult(empty, [ClassRegions(c) for c in CLASS_IDS]) for _ in range(len(x))]
        probs = segment_probs(self.engine, x[todo], self.options.tta) if todo else []
        for i, p in zip(todo, probs):
            row = rows[i] if rows is not None else None
            post, class_probs = self.postprocess, None
            if row is not None and self.options.class_gate != "off":
                if self.options.class_gate == "drop":
                    chosen = set(row_classes(row))
                    class_probs = [1.0 if c in chosen else 0.0 for c in CLASS_IDS]
                else:
                    class_probs = [row[f"p_class_{c}"] for c in CLASS_IDS]
                post = post.with_gate(self.options.class_gate, (0.5,) * NUM_CLASSES)
            masks, regions = post(to_full_size(p), class_probs)
            results[i] = SegmentResult(masks, regions)
        return results


class PipelineSink(Protocol):
    """Where the pipeline hands each image's result besides its files (e.g. the inspection log): `start` gets
    the loaded runs by role (binary, multiclass, segment) before the first image, `add` each row with its masks."""

    def start(self, runs: dict[str, LoadedRun]) -> None: ...

    def add(self, row: dict, result: SegmentResult) -> None: ...


@dataclass
class PipelineOutputs:
    predictions: Path
    submission: Path | None = None
    overlays: Path | None = None


@dataclass
class PipelineStats(PredictStats):
    masks: dict[int, int] = field(default_factory=lambda: {c: 0 for c in CLASS_IDS})


def segment_columns(regions: list[ClassRegions]) -> dict:
    out = {f"area_{r.class_id}": r.area for r in regions}
    out.update({f"boxes_{r.class_id}": r.boxes_text() for r in regions})
    return out


def predict_pipeline(
    images,
    binary: str | Path,
    multiclass: str | Path,
    segment: str | Path,
    outputs: PipelineOutputs,
    config: PredictConfig | None = None,
    options: SegmentOptions | None = None,
    on_image: Callable[[int], None] | None = None,
    sink: PipelineSink | None = None,
    on_problem: Callable[[Problem], None] | None = None,
) -> PipelineStats:
    """Run cascade + segmenter over a folder or list of images and write every output (and hand each result to
    `sink` when given). Unreadable images are skipped, listed in the returned stats and handed to `on_problem`
    as they are found."""
    config = config or PredictConfig()
    cascade, step = load_pipeline(binary, multiclass, segment, config, options)
    stats = PipelineStats(notes=pipeline_notes(cascade, step))
    if sink is not None:
        sink.start(pipeline_runs(cascade, step))
    rows = _stream(images, cascade, step, outputs, config, stats, on_image, sink, on_problem)
    write_predictions(rows, outputs.predictions, columns=[*PREDICTION_COLUMNS, *SEGMENT_COLUMNS])
    return stats


def load_pipeline(binary: str | Path, multiclass: str | Path, segment: str | Path, config: PredictConfig,
                  options: SegmentOptions | None = None) -> tuple[Cascade, SegmentStep]:
    """The cascade and the segment step, each run on its engine (options and runs checked)."""
    options = options or SegmentOptions()
    config.validate()
    options.validate()
    cascade = Cascade.from_runs(binary, multiclass, config)
    seg_run = load_model(segment)
    return cascade, SegmentStep(seg_run, options, make_engine(seg_run, config))


def pipeline_runs(cascade: Cascade, step: SegmentStep) -> dict[str, LoadedRun]:
    """The runs by role, as a PipelineSink's `start` gets them."""
    return {"binary": cascade.binary, "multiclass": cascade.multiclass, "segment": step.run}


def pipeline_notes(cascade: Cascade, step: SegmentStep) -> list[str]:
    return [*cascade.notes, *filter(None, [getattr(step.engine, "note", "")])]


OVERLAYS_MARKER = ".steelinspect-overlays"


@contextmanager
def overlays_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder for the overlays that replaces `path` when the stream completes. An existing `path` is
    replaced only when empty or marked as a previous overlays folder (OVERLAYS_MARKER): PNG files alone do not
    say they are ours, and a careless --overlays must not delete someone's pictures."""
    from steelinspect.io import atomic_dir

    path = Path(path)
    ours = (path / OVERLAYS_MARKER).is_file()

    def replaceable(entry: Path) -> bool:
        return ours and entry.is_file() and not entry.is_symlink() and (
            entry.suffix == ".png" or entry.name == OVERLAYS_MARKER or entry.name.endswith(".tmp"))

    with atomic_dir(path, replaceable=replaceable, what="overlays folder") as tmp:
        (tmp / OVERLAYS_MARKER).write_text("PNG overlays written by steelinspect predict --overlays\n")
        yield tmp


def iter_pipeline(images, cascade: Cascade, step: SegmentStep, config: PredictConfig, stats: PipelineStats,
                  on_image=None, keep_originals: bool = False,
                  on_problem: Callable[[Problem], None] | None = None) -> Iterator[tuple[dict, SegmentResult, np.ndarray | None]]:
    """(row with the segment columns, masks and regions, the original grey image when `keep_originals`) for every
    readable image, in input order; `stats` counts as it goes. The one model path of every caller (one process,
    or one shard of several: infer/shard.py), so their outputs agree byte for byte."""
    paths = list_images(images)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in iter_batches(paths, [*cascade.preprocesses, step.preprocess], config.batch_size,
                                  config.workers, keep_originals=keep_originals,
                                  on_problem=skipped(stats, on_problem), on_image=on_image):
            rows = cascade.predict_batch(batch)
            results = step(batch.input(step.preprocess), rows)
            for k, (row, result) in enumerate(zip(rows, results)):
                row.update(segment_columns(result.regions))
                stats.images += 1
                stats.defects += row["has_defect"]
                for r in result.regions:
                    stats.masks[r.class_id] += r.area > 0
                yield row, result, (batch.originals[k] if keep_originals else None)
            stats.seconds = time.perf_counter() - start


def overlay_image(original: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The overlay PNG's picture: the image at full size with its masks in the class colours."""
    from steelinspect.draw.overlay import overlay_masks

    return overlay_masks(resize(original, IMAGE_SHAPE), masks)


def overlay_name(image_id: str) -> str:
    return f"{Path(image_id).stem}.png"


def _stream(images, cascade: Cascade, step: SegmentStep, outputs: PipelineOutputs, config: PredictConfig,
            stats: PipelineStats, on_image, sink: PipelineSink | None = None, on_problem=None) -> Iterator[dict]:
    from steelinspect.draw.overlay import save_rgb

    # The submission is renamed into place only when the whole stream completes (an error discards it); the
    # overlays folder likewise replaces a previous one only then.
    writer = SubmissionWriter(outputs.submission) if outputs.submission else nullcontext()
    folder = overlays_folder(outputs.overlays) if outputs.overlays else nullcontext()
    with folder as overlays, writer as submission:
        for row, result, original in iter_pipeline(images, cascade, step, config, stats, on_image,
                                                   keep_originals=overlays is not None, on_problem=on_problem):
            if submission is not None:
                submission.add(row["ImageId"], [rle.encode(m) for m in result.masks])
            if overlays is not None:
                save_rgb(overlays / overlay_name(row["ImageId"]), overlay_image(original, result.masks))
            if sink is not None:
                sink.add(row, result)
            yield row
