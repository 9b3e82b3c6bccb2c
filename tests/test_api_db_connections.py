"""The API keeps its Postgres connections open: requests at once reuse them, and a burst opens
none to close again (each would be a new server process with cold caches)."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from analysis_service.app import create_app
from benchmarks.synthetic_job import SyntheticImage, insert_job
from tests.pipeline_helpers import api_client

AT_ONCE = 12
ROUNDS = 8


async def test_bursts_of_requests_reuse_the_connections_they_opened(
    analysis_settings, sessionmaker
):
    images = [SyntheticImage(f"cat/{i}.jpg", "cat", {"background": "grass"}) for i in range(3)]
    async with sessionmaker() as session, session.begin():
        job_id = await insert_job(session, images)
    app = create_app(analysis_settings)
    async with api_client(app) as api:
        opened = 0

        def count(*_: object) -> None:
            nonlocal opened
            opened += 1

        event.listen(app.state.engine.sync_engine, "connect", count)
        for _ in range(ROUNDS):
            answers = await asyncio.gather(*(api.get(f"/v1/jobs/{job_id}") for _ in range(AT_ONCE)))
            assert all(a.status_code == 200 for a in answers)
    assert 0 < opened <= AT_ONCE <= analysis_settings.api_db_connections
