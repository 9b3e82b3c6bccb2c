"""Captions: the keys they are stored under, generated and imported ones, and what is pending."""
