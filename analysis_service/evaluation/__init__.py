"""Scoring discovered structure against ground truth."""
