"""Every SQL statement about API keys and explorer sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import ApiKey, UiSession


async def add_key(
    session: AsyncSession,
    name: str,
    scope: str,
    key_hash: str,
    hint: str,
    daily_tokens: int | None = None,
) -> ApiKey:
    """A new stored key; an active key of the same name makes the flush fail (IntegrityError)."""
    key = ApiKey(name=name, scope=scope, key_hash=key_hash, hint=hint, daily_tokens=daily_tokens)
    session.add(key)
    await session.flush()
    return key


async def active_key_named(session: AsyncSession, name: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
    )


async def daily_tokens_of(session: AsyncSession, name: str) -> int | None:
    """The daily token cap of the active stored key of that name, if it has its own."""
    return await session.scalar(
        select(ApiKey.daily_tokens).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
    )


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every stored key, revoked ones included, oldest first."""
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


async def revoke_key(session: AsyncSession, name: str) -> bool:
    """Revoke the active key of that name and end its sessions; whether there was one."""
    key_hash = await session.scalar(
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.key_hash)
    )
    if key_hash is None:
        return False
    await session.execute(delete(UiSession).where(UiSession.key_hash == key_hash))
    return True


async def active_key(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )


async def any_active_key(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().where(ApiKey.revoked_at.is_(None)))))


async def add_session(
    session: AsyncSession,
    token_hash: str,
    key_hash: str,
    key_name: str,
    scope: str,
    expires_at: datetime,
) -> None:
    session.add(
        UiSession(
            token_hash=token_hash,
            key_hash=key_hash,
            key_name=key_name,
            scope=scope,
            expires_at=expires_at,
        )
    )
    await session.flush()


@dataclass(frozen=True)
class SessionRow:
    key_hash: str
    key_name: str
    scope: str
    stored_key_active: bool  # made with a stored key that is not revoked


async def live_session(session: AsyncSession, token_hash: str) -> SessionRow | None:
    """The unexpired session of that token, and whether its stored key is still active (a
    session made with an ANALYSIS_API_KEYS key has no stored key: the caller checks it)."""
    row = (
        await session.execute(
            select(UiSession.key_hash, UiSession.key_name, UiSession.scope, ApiKey.id)
            .outerjoin(
                ApiKey, (ApiKey.key_hash == UiSession.key_hash) & ApiKey.revoked_at.is_(None)
            )
            .where(UiSession.token_hash == token_hash, UiSession.expires_at > func.now())
        )
    ).first()
    if row is None:
        return None
    return SessionRow(row[0], row[1], row[2], row[3] is not None)


async def end_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(UiSession).where(UiSession.token_hash == token_hash))


async def end_expired_sessions(session: AsyncSession) -> None:
    await session.execute(delete(UiSession).where(UiSession.expires_at <= func.now()))
