"""Pseudo-labels: which unlabelled images a teacher labels confidently enough to train on, and with what.

The rules (thresholds from TrainConfig; every one is recorded in RUN_DIR/pseudo.json):

- Classifier (the teacher has the student's head): every output probability is >= c or <= 1 - c
  (c = --pseudo-confidence); the image's confidence is min over outputs of max(p, 1 - p). binary: the label is
  p >= c. multiclass (step 2): the classes with p >= c, and at least one, since step 2 learns defective images
  only.
- Segmenter: the share of the image's pixels where every class's probability is >= c or <= 1 - c must reach
  --pseudo-pixel-share; the masks are the teacher's own post-processing of its probabilities (thresholds,
  minimum areas), exactly what `predict --segment` would write. With --pseudo-gate (a binary run, step 1): an
  image whose p_defect lies strictly between 1 - c and c is dropped, one <= 1 - c is clean (empty masks, the
  segmenter not run, as in prediction), one >= c must also have a non-empty mask.
- Never an image of the labelled data set (DATA_DIR/train_images, by name or identical bytes: its real labels
  or held-out split must win), never an unreadable one, and for the segmenter only 256x1600 images.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from steelinspect import rle
from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import list_images, read_size
from steelinspect.data.layout import data_dir
from steelinspect.errors import ConfigError, ImageError, Problem
from steelinspect.postprocess.masks import PostProcess
from steelinspect.pseudo.teacher import Teacher

SEGMENT = "segment"


@dataclass(frozen=True)
class Verdict:
    """One image's outcome: kept with labels, or rejected with the reason."""

    kept: bool
    confidence: float
    labels: list[int]  # class ids (binary: [1] defect, [] clean)
    reason: str = ""
    rles: tuple[str, ...] | None = None  # segment: the four masks
    gate: float | None = None  # segment with --pseudo-gate: step 1's p_defect

    def entry(self, image: str) -> dict:
        out = {"image": image, "confidence": round(self.confidence, 6)}
        if self.gate is not None:
            out["p_defect"] = round(self.gate, 6)
        if not self.kept:
            return {**out, "reason": self.reason}
        out["labels"] = self.labels
        if self.rles is not None:
            out["rles"] = list(self.rles)
        return out


def confidence(probs: np.ndarray) -> np.ndarray:
    """max(p, 1 - p): how far from undecided a probability is (elementwise)."""
    return np.maximum(probs, 1.0 - probs)


def judge_classifier(head: str, probs: np.ndarray, c: float) -> Verdict:
    conf = float(confidence(np.asarray(probs, dtype=np.float64)).min())
    if conf < c:
        return Verdict(False, conf, [], f"a probability lies between {1 - c:g} and {c:g}")
    if head == "binary":
        return Verdict(True, conf, [1] if probs[0] >= c else [])
    labels = [cid for cid, p in zip(CLASS_IDS, probs) if p >= c]
    if not labels:
        return Verdict(False, conf, [], "no defect class (step 2 learns defective images only)")
    return Verdict(True, conf, labels)


def pixel_share(probs: np.ndarray, c: float) -> float:
    """Share of pixels where every class's probability is >= c or <= 1 - c (probs (4, H, W))."""
    return float((confidence(probs) >= c).all(axis=0).mean())


def judge_segment(probs: np.ndarray, c: float, min_share: float, post: PostProcess,
                  gate: float | None = None) -> Verdict:
    share = pixel_share(probs, c)
    if share < min_share:
        return Verdict(False, share, [], f"{share:.4f} of the pixels confident, under {min_share:g}", gate=gate)
    masks, _ = post(probs)
    labels = [cid for cid, m in zip(CLASS_IDS, masks) if m.any()]
    if gate is not None and not labels:
        return Verdict(False, share, [], "step 1 says defect, the segmenter's masks are empty", gate=gate)
    return Verdict(True, share, labels, rles=tuple(rle.encode(m) for m in masks), gate=gate)


def judge_gate(p_defect: float, c: float) -> Verdict | None:
    """Step 1's say before the segmenter runs: a rejection, a clean label, or None (defective: segment it)."""
    conf = float(confidence(np.float64(p_defect)))
    if conf < c:
        return Verdict(False, conf, [], f"step 1 unsure: p_defect between {1 - c:g} and {c:g}", gate=p_defect)
    if p_defect <= 1 - c:
        return Verdict(True, conf, [], rles=("",) * len(CLASS_IDS), gate=p_defect)
    return None


def labelled_twins(paths: list[Path], labelled_dir: Path) -> dict[Path, str]:
    """The unlabelled images that are images of the labelled set, by name or by identical bytes: path -> why.
    Bytes are hashed only where file sizes agree, so this reads almost nothing beyond directory listings."""
    labelled = list_images(labelled_dir) if labelled_dir.is_dir() else []
    names = {p.name for p in labelled}
    by_size: dict[int, list[Path]] = defaultdict(list)
    for p in labelled:
        by_size[p.stat().st_size].append(p)
    twins: dict[Path, str] = {}
    hashes: dict[Path, str] = {}

    def sha256(p: Path) -> str:
        if p not in hashes:
            hashes[p] = hashlib.sha256(p.read_bytes()).hexdigest()
        return hashes[p]

    for path in paths:
        if path.name in names:
            twins[path] = f"named like an image of the labelled data set ({labelled_dir / path.name})"
            continue
        same_size = by_size.get(path.stat().st_size, [])
        if same_size:
            digest = sha256(path)
            match = next((p for p in same_size if sha256(p) == digest), None)
            if match is not None:
                twins[path] = f"the same file as {match} of the labelled data set"
    return twins


def rule_text(task: str, c: float, min_share: float, gated: bool) -> str:
    if task == SEGMENT:
        text = (f"a share >= {min_share:g} of the pixels has every class probability >= {c:g} or <= {1 - c:g}; "
                "masks: the teacher's post-processing")
        if gated:
            text += f"; step 1's p_defect <= {1 - c:g} (clean, empty masks) or >= {c:g} (and a non-empty mask)"
        return text
    text = f"every output probability >= {c:g} or <= {1 - c:g}; labels: the outputs >= {c:g}"
    return text + ("" if task == "binary" else ", at least one class")


def label_images(images_dir: Path, labelled_dir: Path, task: str, teacher: Teacher, c: float, share: float,
                 min_pixel_share: float, gate: Teacher | None = None,
                 on_image: Callable[[int], None] | None = None) -> dict:
    """The pseudo.json record (without "format") for every image of `images_dir`, in file-name order."""
    paths = list_images(images_dir)
    excluded: dict[str, str] = {p.name: why for p, why in labelled_twins(paths, labelled_dir).items()}
    if task == SEGMENT:
        for path in paths:
            if path.name in excluded:
                continue
            try:
                size = read_size(path)
            except ImageError as exc:
                excluded[path.name] = exc.problem
                continue
            if size != IMAGE_SHAPE[::-1]:
                excluded[path.name] = (f"image is {size[0]}x{size[1]}; segmenter pseudo-labels need "
                                       f"{IMAGE_SHAPE[1]}x{IMAGE_SHAPE[0]} (width x height)")
    candidates = [p for p in paths if p.name not in excluded]

    def unreadable(problem: Problem) -> None:
        excluded[Path(problem.file).name] = problem.problem

    verdicts: dict[str, Verdict] = {}
    if task != SEGMENT:
        for path, probs in teacher.probabilities(candidates, unreadable, on_image):
            verdicts[path.name] = judge_classifier(task, probs, c)
    else:
        p_defect: dict[str, float] = {}
        to_segment = candidates
        if gate is not None:  # step 1 first: the segmenter runs only on what it calls defective
            to_segment = []
            for path, probs in gate.probabilities(candidates, unreadable):
                p = p_defect[path.name] = float(probs[0])
                verdict = judge_gate(p, c)
                if verdict is None:
                    to_segment.append(path)
                else:
                    verdicts[path.name] = verdict
        post = PostProcess.from_dict(teacher.run.postprocess or {})
        for path, probs in teacher.probabilities(to_segment, unreadable, on_image):
            verdicts[path.name] = judge_segment(probs, c, min_pixel_share, post, p_defect.get(path.name))
    order = [p.name for p in paths]
    kept = [verdicts[n].entry(n) for n in order if n in verdicts and verdicts[n].kept]
    rejected = [verdicts[n].entry(n) for n in order if n in verdicts and not verdicts[n].kept]
    return {
        "images_dir": str(images_dir),
        "teacher": teacher.describe(),
        "gate": gate.describe() if gate is not None else None,
        "task": task,
        "thresholds": {"confidence": c, "share": share, **({"pixel_share": min_pixel_share} if task == SEGMENT else {})},
        "rule": rule_text(task, c, min_pixel_share, gate is not None),
        "counts": {"images": len(paths), "kept": len(kept), "rejected": len(rejected), "excluded": len(excluded)},
        "kept": kept,
        "rejected": rejected,
        "excluded": [{"image": n, "reason": excluded[n]} for n in order if n in excluded],
    }
