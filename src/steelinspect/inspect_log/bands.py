"""The bands the log stores per inspection. They live in runs/bands.py (tuning writes them into the runs, the
log reads them); re-exported here so `from steelinspect.inspect_log import Bands` keeps working."""

from steelinspect.runs.bands import BANDS, Bands, BandSet, as_band_set, load_bands

__all__ = ["BANDS", "Bands", "BandSet", "as_band_set", "load_bands"]
