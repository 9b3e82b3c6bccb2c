"""An API without keys may run only where nobody else can reach it: on a loopback address."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import SQLAlchemyError

from analysis_service.auth import repository
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.settings import AnalysisSettings
from shared.loopback import is_loopback_host

HOW_TO_ADD_A_KEY = (
    "set ANALYSIS_API_KEYS (comma-separated keys, each 'key' or 'name:key') or create one "
    'with `make keys ARGS="create --name NAME"`'
)


async def stored_keys_exist(database_url: str) -> bool:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            return await repository.any_active_key(session)
    finally:
        await engine.dispose()


def open_mode_refusal(settings: AnalysisSettings, host: str, database_url: str) -> str | None:
    """Why the API must not start listening on `host`, or None: with no key configured
    (ANALYSIS_API_KEYS or an active stored key) it may listen on loopback only."""
    if settings.env_api_keys or is_loopback_host(host):
        return None
    try:
        if asyncio.run(stored_keys_exist(database_url)):
            return None
    except SQLAlchemyError as exc:  # fail closed, saying why
        return (
            f"refusing to listen on {host!r}: ANALYSIS_API_KEYS is empty and the stored keys "
            f"could not be read ({type(exc).__name__}; is the database up and migrated?)"
        )
    return (
        f"refusing to listen on {host!r} with no API key configured: anyone who can reach "
        f"that interface could list, submit and cancel jobs. Either {HOW_TO_ADD_A_KEY}, or "
        "listen on a loopback address (HOST=127.0.0.1)."
    )
