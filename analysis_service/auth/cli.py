"""`python -m analysis_service.auth keys create --name NAME [--read-only] | list | revoke NAME`
(or `make keys ARGS="..."`). It talks to the database directly: whoever can reach the
database administers the keys. A created key is printed once, on stdout alone; only its
SHA-256 is stored."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.exc import IntegrityError

from analysis_service.auth import repository
from analysis_service.auth.keys import Scope, check_name, new_token, token_hash, token_hint
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.embedded_db import resolve_database_url
from analysis_service.migrate import upgrade
from analysis_service.settings import AnalysisSettings


class CommandFailed(Exception):
    """The command cannot do what was asked; the message says why."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens above 0, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis_service.auth", description=__doc__)
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="API keys of the analysis API")
    commands = keys.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="what jobs and sign-ins record")
    create.add_argument(
        "--read-only", action="store_true", help="may read, not submit, cancel or retry"
    )
    create.add_argument(
        "--daily-tokens",
        type=_positive,
        metavar="N",
        help="LLM tokens its jobs may spend in any 24 hours (default: KEY_DAILY_TOKENS)",
    )
    commands.add_parser("list", help="names, scopes and state; never the keys")
    revoke = commands.add_parser("revoke", help="revoke a key and end its sign-ins")
    revoke.add_argument("name")
    return parser


async def _create(
    url: str, settings: AnalysisSettings, name: str, scope: Scope, daily_tokens: int | None
) -> str:
    check_name(name)
    if name in {k.name for k in settings.env_api_keys}:
        raise CommandFailed(f"ANALYSIS_API_KEYS already has a key named '{name}'")
    token = new_token()
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            if await repository.active_key_named(session, name) is not None:
                raise CommandFailed(f"a key named '{name}' exists; revoke it first")
            await repository.add_key(
                session, name, scope, token_hash(token), token_hint(token), daily_tokens
            )
    except IntegrityError:
        raise CommandFailed(f"a key named '{name}' exists; revoke it first") from None
    finally:
        await engine.dispose()
    return token


async def _list(url: str, settings: AnalysisSettings) -> list[str]:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            stored = await repository.list_keys(session)
    finally:
        await engine.dispose()
    default_cap = str(settings.key_daily_tokens or "none")
    lines = [
        f"{'name':<24} {'scope':<6} {'starts with':<12} {'tokens/24h':<12} {'created':<17} state"
    ]
    for key in stored:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        cap = str(key.daily_tokens or default_cap)
        lines.append(
            f"{key.name:<24} {key.scope:<6} {key.hint + '...':<12} {cap:<12} "
            f"{key.created_at:%Y-%m-%d %H:%M} {state}"
        )
    lines += [
        f"{k.name:<24} {Scope.WRITE.value:<6} {'':<12} {default_cap:<12} {'':<17} "
        "from ANALYSIS_API_KEYS"
        for k in settings.env_api_keys
    ]
    return lines


async def _revoke(url: str, name: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            if not await repository.revoke_key(session, name):
                raise CommandFailed(f"no active stored key is named '{name}'")
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = AnalysisSettings()
    url = resolve_database_url(settings)
    upgrade(url)  # as `make serve` does: the key tables exist before the first key
    try:
        if args.command == "create":
            scope = Scope.READ if args.read_only else Scope.WRITE
            token = asyncio.run(_create(url, settings, args.name, scope, args.daily_tokens))
            print(token)
            print(
                f"created {scope.value} key '{args.name}'; it is shown this once, keep it now",
                file=sys.stderr,
            )
        elif args.command == "list":
            print("\n".join(asyncio.run(_list(url, settings))))
        else:
            asyncio.run(_revoke(url, args.name))
            print(f"revoked '{args.name}'; its sign-ins have ended", file=sys.stderr)
    except (CommandFailed, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
