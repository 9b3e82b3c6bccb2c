"""Engine and sessions. The session dependency owns the transaction; services only flush."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def sqlalchemy_url(url: str) -> str:
    """Any postgres URL, as SQLAlchemy's psycopg 3 dialect wants it."""
    for prefix in (
        "postgresql+psycopg://",
        "postgresql+asyncpg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """Any postgres URL, as libpq (psycopg, procrastinate) wants it."""
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+psycopg://") :]


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    """pool_size connections are kept open; up to max_overflow more are opened when those
    are busy, and closed again when they are returned."""
    return create_async_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed on success, rolled back on any error."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_streaming_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The same, living until the response's body has been sent."""
    async for session in get_session(request):
        yield session


# Committed when the route returns, before its answer is sent: a client that reads right after
# a write it was answered for sees it (a commit after the answer lets a fast client get 404
# for the job it was just given).
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
# For routes whose body streams from the database after they return (exports, CSV streams):
# their session must outlive the route. They only read. (A callable of its own: FastAPI shares
# a dependency's value within a request by callable.)
StreamingSession = Annotated[AsyncSession, Depends(get_streaming_session)]


def with_database(url: str, name: str) -> str:
    """The same server, another database (query parameters such as host= are kept)."""
    from sqlalchemy.engine import make_url

    return make_url(libpq_url(url)).set(database=name).render_as_string(hide_password=False)
