"""Decision bands: below T1 OK, above T2 NG, between REVIEW (a person looks at it); and a run's bands.json.

One pair of thresholds per decision: step 1's p_defect (kept in the binary run's bands.json) and each class's
p_class_c (kept in the multiclass run's bands.json; `steelinspect tune-bands` writes both). The overall band of
an image (BandSet.decide):

- OK when step 1 is OK (the class decisions are not looked at: nothing goes on);
- REVIEW when step 1 is REVIEW or any banded class decision is REVIEW;
- NG otherwise.

Its uncertainty is the largest of the decisions that counted (each 0 outside its REVIEW band, 1 at its middle).

This sits in runs/ (below tuning/ and inspect_log/, which both need it and may not import each other).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from steelinspect.constants import CLASS_IDS
from steelinspect.errors import ConfigError, RunError
from steelinspect.io import read_json, write_json
from steelinspect.runs.files import BANDS_FILE

BANDS = ("OK", "REVIEW", "NG")
BANDS_FORMAT = 1


@dataclass(frozen=True)
class Bands:
    """Two thresholds on one probability, t1 <= t2. t1 == t2 means no REVIEW band. The defaults are a starting
    point only: `steelinspect tune-bands` sets them from a validation split."""

    t1: float = 0.3
    t2: float = 0.7

    def __post_init__(self) -> None:
        if not (0.0 <= self.t1 <= self.t2 <= 1.0):
            raise ConfigError(f"band thresholds need 0 <= T1 <= T2 <= 1, got T1={self.t1}, T2={self.t2}")

    def band(self, p: float) -> str:
        if p < self.t1:
            return "OK"
        if p > self.t2:
            return "NG"
        return "REVIEW"

    def uncertainty(self, p: float) -> float:
        """0 outside the REVIEW band, rising to 1 at its middle (where the model knows least)."""
        if not self.t1 <= p <= self.t2 or self.t2 == self.t1:
            return 0.0
        half = (self.t2 - self.t1) / 2
        return max(0.0, 1.0 - abs(p - (self.t1 + half)) / half)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BandSet:
    """Step 1's bands and, optionally, one per class (a class without bands is not banded)."""

    step1: Bands = field(default_factory=Bands)
    classes: dict[int, Bands] = field(default_factory=dict)

    def __post_init__(self) -> None:
        wrong = [c for c in self.classes if c not in CLASS_IDS]
        if wrong:
            raise ConfigError(f"class bands are for classes {CLASS_IDS}, got {wrong}")

    def decide(self, p_defect: float, p_class: Sequence[float] | None = None) -> tuple[str, float]:
        """(overall band, uncertainty) of one image; p_class is p_class_1..4 in class order."""
        first = self.step1.band(p_defect)
        uncertainty = self.step1.uncertainty(p_defect)
        if first == "OK" or not self.classes:
            return first, uncertainty
        if p_class is None or len(p_class) != len(CLASS_IDS):
            raise ConfigError("class bands need p_class_1..4")
        bands = [first]
        for class_id, bands_c in sorted(self.classes.items()):
            p = p_class[class_id - 1]
            bands.append(bands_c.band(p))
            uncertainty = max(uncertainty, bands_c.uncertainty(p))
        return ("REVIEW" if "REVIEW" in bands else "NG"), uncertainty

    def band(self, p_defect: float, p_class: Sequence[float] | None = None) -> str:
        return self.decide(p_defect, p_class)[0]

    def uncertainty(self, p_defect: float, p_class: Sequence[float] | None = None) -> float:
        return self.decide(p_defect, p_class)[1]

    def to_dict(self) -> dict:
        """Step 1's {"t1", "t2"} (as before class bands existed, so an unchanged setting keeps its model set),
        plus "classes" when any class is banded."""
        described = self.step1.to_dict()
        if self.classes:
            described["classes"] = {str(c): b.to_dict() for c, b in sorted(self.classes.items())}
        return described


def as_band_set(bands: Bands | BandSet | None) -> BandSet:
    if bands is None:
        return BandSet()
    return bands if isinstance(bands, BandSet) else BandSet(step1=bands)


# --- a run's bands.json -------------------------------------------------------------------------------------
#
# {"format": 1, "role": "step1" | "classes", "weights_id": the run's weights when tuned,
#  "tuned": {"data", "split": "val", "targets": {...}, "at"},
#  "step1": DECISION                  (binary run)
#  "classes": {"1": DECISION, ...}    (multiclass run; a class the split could not tune is absent)}
# DECISION = {"t1", "t2", "curve": {"threshold": [...], "precision": [...], "recall": [...]}, "cost": {...}}


def bands_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / BANDS_FILE


def write_bands(run_dir: str | Path, content: dict) -> Path:
    """Write a run's bands.json (atomically) after checking it reads back."""
    _decisions(content, bands_path(run_dir))
    path = bands_path(run_dir)
    write_json(path, {"format": BANDS_FORMAT, **content})
    return path


def read_bands(run_dir: str | Path) -> dict | None:
    """A run's bands.json as written, or None when the run has none. A damaged file raises RunError. Several
    runs given together (an ensemble) have no bands of their own; a --folds parent keeps its own bands.json."""
    if isinstance(run_dir, (list, tuple)):
        return None
    path = bands_path(run_dir)
    if not path.is_file():
        return None
    try:
        content = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read the bands: {exc}", path) from None
    if not isinstance(content, dict) or content.get("format") != BANDS_FORMAT:
        raise RunError(f"not a bands file of format {BANDS_FORMAT}", path)
    _decisions(content, path)
    return content


def _bands_of(decision, where: str, path: Path) -> Bands:
    try:
        t1, t2 = float(decision["t1"]), float(decision["t2"])
    except (KeyError, TypeError, ValueError):
        raise RunError(f"{where} needs numbers t1 and t2", path) from None
    if not (math.isfinite(t1) and math.isfinite(t2)):
        raise RunError(f"{where}: t1 and t2 must be finite", path)
    try:
        return Bands(t1, t2)
    except ConfigError as exc:
        raise RunError(f"{where}: {exc}", path) from None


def _decisions(content: dict, path: Path) -> tuple[Bands | None, dict[int, Bands]]:
    step1 = _bands_of(content["step1"], "step1", path) if content.get("step1") is not None else None
    classes = {}
    raw = content.get("classes") or {}
    if not isinstance(raw, dict):
        raise RunError("classes must map class ids to bands", path)
    for key, decision in raw.items():
        if key not in {str(c) for c in CLASS_IDS}:
            raise RunError(f"classes: {key!r} is not a class id", path)
        classes[int(key)] = _bands_of(decision, f"class {key}", path)
    return step1, classes


def load_bands(binary_run: str | Path | None, multiclass_run: str | Path | None) -> BandSet | None:
    """The bands `predict --db`, `serve --db` and `watch` use: step 1's from the binary run's bands.json, the
    classes' from the multiclass run's. None when neither run has one (the caller then uses BandSet(), the
    defaults); a run without a file contributes its defaults (step 1: 0.3 / 0.7; classes: not banded)."""
    binary = read_bands(binary_run) if binary_run is not None else None
    multi = read_bands(multiclass_run) if multiclass_run is not None else None
    if binary is None and multi is None:
        return None
    step1 = _decisions(binary, bands_path(binary_run))[0] if binary is not None else None
    classes = _decisions(multi, bands_path(multiclass_run))[1] if multi is not None else {}
    return BandSet(step1 or Bands(), classes)


def resolve_bands(binary: str | Path, multiclass: str | Path, ok_below: float | None = None,
                  ng_above: float | None = None) -> BandSet:
    """The bands to log with: the runs' tuned bands.json when present, else the defaults; explicit step 1
    thresholds (predict's / watch's --ok-below / --ng-above) win over the tuned ones."""
    bands = load_bands(binary, multiclass) or BandSet()
    if ok_below is not None or ng_above is not None:
        step1 = Bands(bands.step1.t1 if ok_below is None else ok_below,
                      bands.step1.t2 if ng_above is None else ng_above)
        bands = BandSet(step1, bands.classes)
    return bands


def stale_notes(runs: dict) -> list[str]:
    """One note per run whose bands.json was tuned for other weights than the run now holds (it was retrained
    after `tune-bands`): its bands still apply, but were chosen for another model. `runs`: role -> LoadedRun."""
    notes = []
    for role, run in runs.items():
        try:
            content = read_bands(run.run_dir)
        except RunError as exc:
            notes.append(str(exc))
            continue
        tuned_for = (content or {}).get("weights_id")
        if tuned_for and run.weights_id and tuned_for != run.weights_id:
            notes.append(f"the {role} run's {BANDS_FILE} was tuned for other weights ({tuned_for[:12]}, the run "
                         f"holds {run.weights_id[:12]}): run tune-bands again")
    return notes


def _report_decision(decision: dict) -> dict:
    curve = decision.get("curve") or {}
    return {"t1": float(decision["t1"]), "t2": float(decision["t2"]),
            "curve": {k: list(curve.get(k, [])) for k in ("threshold", "precision", "recall")},
            "cost": decision.get("cost", {})}


def bands_report(binary_dir: str | Path | None, multiclass_dir: str | Path | None) -> dict:
    """/api/log/bands: {"available", "step1": {"t1", "t2", "curve", "cost"} | null, "classes": {"1": ...}}.
    "available" is false when neither run was tuned (then step1 is null and classes empty)."""
    binary = read_bands(binary_dir) if binary_dir is not None else None
    multi = read_bands(multiclass_dir) if multiclass_dir is not None else None
    step1 = (binary or {}).get("step1")
    classes = (multi or {}).get("classes") or {}
    return {"available": step1 is not None or bool(classes),
            "step1": _report_decision(step1) if step1 is not None else None,
            "classes": {k: _report_decision(v) for k, v in sorted(classes.items())}}
