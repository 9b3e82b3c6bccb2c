"""An API without keys may run only where nobody else can reach it: on a loopback address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from sqlalchemy.exc import SQLAlchemyError

from analysis_service.auth import repository
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.settings import AnalysisSettings

HOW_TO_ADD_A_KEY = (
    "set ANALYSIS_API_KEYS (comma-separated keys, each 'key' or 'name:key') or create one "
    'with `make keys ARGS="create --name NAME"`'
)


def is_loopback_address(address: str) -> bool:
    """Whether an IP address (as text) is a loopback one; names and garbage are not."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_loopback_name(host: str | None) -> bool:
    """Whether a request was addressed (its Host header, without the port) to this machine by
    a loopback name: `localhost`, a name under `.localhost` (RFC 6761: never sent to DNS) or
    a loopback address. A web page that rebinds its own name to 127.0.0.1 (DNS rebinding)
    still sends its own name, so its requests are told apart from the user's."""
    if not host:
        return False
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or is_loopback_address(name)


def is_loopback_host(host: str) -> bool:
    """Whether every address a listening host name or address stands for is loopback
    (`0.0.0.0`, `::` and the empty name mean every interface: not loopback)."""
    if not host:
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return is_loopback_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(is_loopback_address(str(info[4][0])) for info in infos)


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
