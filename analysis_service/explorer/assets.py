"""The explorer's static files (JavaScript modules and a stylesheet), read from the package once
and served with an ETag so that a browser revalidates them with a 304 instead of fetching them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file of static/ by name: only these names are ever served (no path is built from
    the URL), so nothing but the shipped files can be read through the asset route."""
    found: dict[str, Asset] = {}
    for entry in (resources.files("analysis_service.explorer") / "static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return found
