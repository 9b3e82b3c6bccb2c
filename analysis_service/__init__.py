"""Datasets, jobs, discovery and queries. Owns Postgres."""
