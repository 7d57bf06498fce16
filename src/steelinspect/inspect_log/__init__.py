"""The inspection log: every verdict stored in a database (SQLite or PostgreSQL), reviews beside it."""

from steelinspect.inspect_log.bands import BANDS, Bands, BandSet, load_bands
from steelinspect.inspect_log.regions import DefectRegion, regions_from_masks
from steelinspect.inspect_log.store import (
    DEFAULT_URL,
    Entry,
    InspectionLog,
    LogFilter,
    Page,
    ReviewedImage,
    open_log,
)

__all__ = ["BANDS", "Bands", "BandSet", "load_bands",
           "DefectRegion", "regions_from_masks", "DEFAULT_URL", "Entry", "InspectionLog",
           "LogFilter", "Page", "ReviewedImage", "open_log"]
