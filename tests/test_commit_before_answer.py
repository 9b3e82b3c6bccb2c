"""A write is committed before its answer leaves: a client that reads right after a write it
was answered for sees it, whatever the timing."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select

from analysis_service.app import create_app
from analysis_service.models import Job
from tests.builders import make_dataset


async def test_a_job_exists_when_its_202_starts_to_leave(
    analysis_settings, sessionmaker, data_root: Path
):
    """Seen from another connection at the moment the answer's first message is sent: with a
    commit after the answer (as a request-scoped session does), the job is not there yet and a
    fast client's GET is a 404."""
    make_dataset(data_root / "pets")
    app = create_app(analysis_settings)
    jobs_seen: list[int] = []

    async def probed(scope, receive, send):
        async def send_and_look(message):
            if message["type"] == "http.response.start" and scope.get("method") == "POST":
                async with sessionmaker() as session:
                    jobs_seen.append(await session.scalar(select(func.count()).select_from(Job)))
            await send(message)

        await app(scope, receive, send_and_look)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=probed)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            answered = await api.post("/v1/jobs", json={"dataset_path": "pets"})
    assert answered.status_code == 202
    assert jobs_seen == [1]
