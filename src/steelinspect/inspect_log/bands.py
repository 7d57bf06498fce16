"""The three bands of a decision: below T1 OK, above T2 NG, between REVIEW (a person looks at it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from steelinspect.errors import ConfigError

BANDS = ("OK", "REVIEW", "NG")


@dataclass(frozen=True)
class Bands:
    """Two thresholds on step 1's p_defect, t1 <= t2. t1 == t2 means no REVIEW band. Defaults are a starting
    point only; tuning them on a validation split is a separate step."""

    t1: float = 0.3
    t2: float = 0.7

    def __post_init__(self) -> None:
        if not (0.0 <= self.t1 <= self.t2 <= 1.0):
            raise ConfigError(f"band thresholds need 0 <= T1 <= T2 <= 1, got T1={self.t1}, T2={self.t2}")

    def band(self, p_defect: float) -> str:
        if p_defect < self.t1:
            return "OK"
        if p_defect > self.t2:
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
