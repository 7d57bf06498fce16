"""Pseudo-labelling: a teacher run labels unlabelled images, the confident ones join a student's training."""
