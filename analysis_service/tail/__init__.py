"""Rare subpopulations: the tail of each dimension, with prompts for generating more."""
