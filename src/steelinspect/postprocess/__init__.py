"""Segmenter probabilities -> masks: thresholds, minimum areas, gating, full-size resizing, the tuning grid."""
