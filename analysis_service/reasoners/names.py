"""Names of dimensions and attributes: short labels, checked before they are kept.

What an LLM proposes is untrusted text (a caption may carry instructions, and a model may
follow them), and a user's criterion is input from outside. A name is kept only when it is a
short label of letters, digits, spaces and the punctuation labels use; anything else (control
characters, newlines, markup, a paragraph) is dropped with the reason logged, never stored.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

from analysis_service.reasoners.base import OTHER, DimensionProposal

logger = logging.getLogger(__name__)

#: The longest name taken, in characters (as given, before normalizing).
MAX_NAME_CHARS = 100
#: Besides letters, combining marks and digits of any script.
_PUNCTUATION = frozenset(" -'\u2019&/(),._")
#: The rules of `name_problem` but the length, as a JSON Schema (ECMA-262, Unicode) pattern: what
#: the published schema of a criterion says, so that clients and fuzzers generating from it send
#: names the API takes. Letters, marks, digits and the punctuation above, with a letter or digit.
_NAME_CHARS = "\\p{L}\\p{M}\\p{N} '\u2019&/(),._-"
NAME_PATTERN = f"^[{_NAME_CHARS}]*[\\p{{L}}\\p{{N}}][{_NAME_CHARS}]*$"


def normalize(name: str) -> str:
    """The stored form: lower case, punctuation other than & / - as spaces, one space between
    words."""
    name = re.sub(r"[^\w\s&/-]", " ", name.lower())
    return re.sub(r"\s+", " ", name).strip()


def name_problem(raw: str) -> str | None:
    """Why `raw` cannot be a name, or None."""
    if len(raw) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    for char in raw:
        if char not in _PUNCTUATION and unicodedata.category(char)[0] not in "LMN":
            return f"holds the character U+{ord(char):04X}, which names may not use"
    if not any(unicodedata.category(char)[0] in "LN" for char in normalize(raw)):
        return "no letter or digit"
    return None


def clean_name(raw: object) -> tuple[str | None, str | None]:
    """The normalized name, or None and why `raw` is not one."""
    if not isinstance(raw, str):
        return None, "not a string"
    if problem := name_problem(raw):
        return None, problem
    return normalize(raw), None


def dropped(raw: object, problem: str, what: str, subject: str) -> None:
    """Log a name that was not kept; repr() keeps its control characters off the log line."""
    shown = repr(raw)[:120]
    logger.warning("dropped a proposed %s name of %r: %s: %s", what, subject[:80], problem, shown)


def clean_one(raw: object, what: str, subject: str) -> str | None:
    """`raw` normalized, or None (logged) when it is not a name."""
    name, problem = clean_name(raw)
    if problem is not None:
        dropped(raw, problem, what, subject)
    return name


def clean_names(raws: Iterable[object], what: str, subject: str) -> list[str]:
    """The valid names among `raws`, normalized, each once, in order; blank ones (an answer's
    way of saying 'none') are skipped silently, other invalid ones are logged."""
    kept: list[str] = []
    for raw in raws:
        if isinstance(raw, str) and not raw.strip():
            continue
        name = clean_one(raw, what, subject)
        if name is not None and name not in kept:
            kept.append(name)
    return kept


def checked_proposals(
    proposals: Iterable[DimensionProposal], subject: str
) -> list[DimensionProposal]:
    """The proposals as they may be stored, whatever reasoner made them: a dimension whose
    name is invalid is dropped, and so is every invalid attribute (and OTHER, which every
    dimension gets anyway); a dimension left without attributes is dropped."""
    kept: dict[str, DimensionProposal] = {}
    for proposal in proposals:
        name = clean_one(proposal.name, "dimension", subject)
        attributes = [
            a for a in clean_names(proposal.attributes, "attribute", subject) if a != OTHER
        ]
        if name is not None and attributes and name not in kept:
            kept[name] = DimensionProposal(name, attributes)
    return list(kept.values())
