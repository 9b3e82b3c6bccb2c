"""Every entry point finds its database the same way: DATABASE_URL, else the embedded server."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_service import embedded_db
from analysis_service.embedded_db import resolve_database_url
from analysis_service.settings import AnalysisSettings


def test_database_url_wins_and_starts_nothing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(embedded_db, "start_embedded", pytest.fail)
    settings = AnalysisSettings(database_url="postgresql://u@db/x")
    assert resolve_database_url(settings) == "postgresql://u@db/x"


def test_unset_starts_the_embedded_server_under_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    calls = []

    def start(state_dir: Path, *, database: str) -> str:
        calls.append((state_dir, database))
        return "postgresql://embedded"

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(embedded_db, "start_embedded", start)
    settings = AnalysisSettings(state_dir=tmp_path)
    assert resolve_database_url(settings) == "postgresql://embedded"
    assert resolve_database_url(settings, database="other") == "postgresql://embedded"
    assert calls == [(tmp_path, embedded_db.DATABASE_NAME), (tmp_path, "other")]
