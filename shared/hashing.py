"""The one canonical JSON hash. Stored captions (caption_key) and cached LLM answers (the
request hash) are keyed by it, so its output must never change: sorted keys, no whitespace,
ASCII escapes (json.dumps' default)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_sha256(value: Any) -> str:
    """The hex sha256 of `value` as canonical JSON: equal data, equal hash, in any process."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
