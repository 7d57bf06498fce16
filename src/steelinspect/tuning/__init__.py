"""Tuning that needs the inference stack: the segmenter's post-processing re-tuned behind the classifier gate."""
