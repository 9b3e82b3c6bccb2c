"""Predictions of a model on a finished job's images."""
