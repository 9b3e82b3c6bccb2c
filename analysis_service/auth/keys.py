"""API keys: their form, how they are hashed, scopes, and the keys of ANALYSIS_API_KEYS."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

# Stored keys start with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "subpop_"
# A key of ANALYSIS_API_KEYS is chosen by a person; shorter ones are refused as guessable.
MIN_ENV_KEY_CHARS = 16
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"


class Scope(StrEnum):
    READ = "read"  # GET only
    WRITE = "write"  # also submit, cancel, retry


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name (None when the API runs open) and what it may do."""

    name: str | None
    scope: Scope
    via: str  # "bearer", "session" or "open"

    @property
    def can_write(self) -> bool:
        return self.scope == Scope.WRITE


OPEN = Principal(name=None, scope=Scope.WRITE, via="open")


def new_token() -> str:
    """A fresh key: 32 random bytes, URL-safe, with the recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a key or session token. Tokens carry 256 random bits, so a plain
    SHA-256 cannot be reversed by guessing; a slow password hash would only slow each request."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_hint(token: str) -> str:
    """The first characters of a key, shown by `keys list` to tell keys apart."""
    return token[: len(TOKEN_PREFIX) + 4]


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"key name {name!r} is not valid: {NAME_RULE}")
    return name


@dataclass(frozen=True)
class EnvKey:
    """One key of ANALYSIS_API_KEYS: its name and hash (the key itself is not kept)."""

    name: str
    key_hash: str


def _env_entries(value: str) -> list[tuple[str | None, str]]:
    """ANALYSIS_API_KEYS split into (name or None, key) pairs."""
    entries: list[tuple[str | None, str]] = []
    for raw in value.split(","):
        entry = raw.strip()
        if entry:
            name, sep, key = entry.partition(":")
            entries.append((name, key) if sep else (None, entry))
    return entries


def env_key_secrets(value: str) -> list[str]:
    """The keys themselves of ANALYSIS_API_KEYS, for a local client (`make demo`) to send."""
    return [key for _, key in _env_entries(value)]


def parse_env_keys(value: str) -> list[EnvKey]:
    """ANALYSIS_API_KEYS: comma-separated entries, each `key` or `name:key` (the name is what
    jobs record; a bare key is named `env-` and the start of its hash). Raises ValueError."""
    keys: list[EnvKey] = []
    for name, key in _env_entries(value):
        if len(key) < MIN_ENV_KEY_CHARS:
            raise ValueError(
                f"an ANALYSIS_API_KEYS key is shorter than {MIN_ENV_KEY_CHARS} characters"
            )
        digest = token_hash(key)
        keys.append(EnvKey(check_name(name) if name is not None else f"env-{digest[:8]}", digest))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("ANALYSIS_API_KEYS names a key twice")
    return keys


def match_env_key(token: str, keys: list[EnvKey]) -> EnvKey | None:
    """The env key equal to token, comparing against every key in constant time."""
    digest = token_hash(token)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.key_hash):
            found = key
    return found
