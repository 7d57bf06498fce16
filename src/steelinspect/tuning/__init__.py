"""Tuning after training, with the inference stack: the segmenter's post-processing re-tuned behind the classifier
gate, OK / REVIEW / NG bands, runs combined into an ensemble, a run adapted to the plant's unlabelled frames."""
