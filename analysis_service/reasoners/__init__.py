"""The reasoning side of discovery, behind one protocol: offline now, LLMs later."""

from __future__ import annotations

from analysis_service.reasoners.base import Reasoner


def build_reasoner(name: str = "lexicon") -> Reasoner:
    if name == "lexicon":
        from analysis_service.reasoners.lexicon import LexiconReasoner

        return LexiconReasoner()
    raise ValueError(f"unknown reasoner {name!r}")
