"""`subpop`, the command-line client of the analysis API (HTTP only)."""
