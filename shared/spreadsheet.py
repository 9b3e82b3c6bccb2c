"""CSV cells a spreadsheet shows as text, never runs (CSV injection): every CSV the services
write passes its cells, headers included, through spreadsheet_safe."""

from __future__ import annotations

# A cell starting with one of these is run as a formula by spreadsheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """Formula-like cells get a leading quote, as OWASP advises. JSON carries the raw values,
    for programs."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
