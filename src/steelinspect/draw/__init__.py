"""Masks drawn in the class colours (every picture of masks: EDA, prediction overlays, the web page)."""
