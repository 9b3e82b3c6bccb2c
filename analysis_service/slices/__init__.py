"""Slices: the subpopulations where a model errs, with intervals and controlled discoveries."""
