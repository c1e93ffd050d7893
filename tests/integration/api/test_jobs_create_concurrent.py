"""Many users creating jobs at once: every creation lands, each job once, with its files.

On SQLite the writers of one process take turns (`Database.write_turn`) instead of racing
for the database's lock; on PostgreSQL each locks only its own user's row.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from imputehub.db.models import Job, JobInput
from imputehub.runtime import Runtime
from tests.support.api import make_actor
from tests.support.factories import make_file, make_panel, make_service

CLIENTS = 8
JOBS_EACH = 3


async def test_eight_users_creating_jobs_at_once_all_succeed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="1000g-phase3", build="hg19")
    actors = [await make_actor(runtime, client, f"user{i}") for i in range(CLIENTS)]
    files = {actor.id: await make_file(runtime, actor.id) for actor in actors}

    async def create_all(headers: dict[str, str], file_id: str) -> list[httpx.Response]:
        body = {
            "service_id": service.slug,
            "reference_panel_id": panel.slug,
            "input_file_ids": [file_id],
            "build": "hg19",
            "phasing": "eagle",
        }
        return [
            await client.post("/api/v1/jobs", json={**body, "name": f"job {i}"}, headers=headers)
            for i in range(JOBS_EACH)
        ]

    answers = await asyncio.gather(
        *(create_all(actor.headers, files[actor.id].id) for actor in actors)
    )
    for actor, responses in zip(actors, answers, strict=True):
        assert [r.status_code for r in responses] == [201] * JOBS_EACH, [r.text for r in responses]
        assert {r.json()["input_files"][0]["id"] for r in responses} == {files[actor.id].id}
    async with runtime.db.session() as session:
        per_user = dict(
            (await session.execute(select(Job.user_id, func.count()).group_by(Job.user_id))).all()
        )
        inputs = await session.scalar(select(func.count()).select_from(JobInput))
    assert per_user == {actor.id: JOBS_EACH for actor in actors}
    assert inputs == CLIENTS * JOBS_EACH


async def test_write_turns_are_one_at_a_time_on_sqlite(runtime: Runtime) -> None:
    """Two writers of one process: on SQLite the second waits until the first is done."""
    inside: list[str] = []
    order: list[str] = []

    async def writer(name: str) -> None:
        async with runtime.db.write_turn():
            inside.append(name)
            order.append(f"{name} in ({len(inside)} inside)")
            await asyncio.sleep(0.01)
            inside.remove(name)

    await asyncio.gather(writer("a"), writer("b"))
    alone = ["a in (1 inside)", "b in (1 inside)"]
    together = ["a in (1 inside)", "b in (2 inside)"]
    assert order == (alone if runtime.db.is_sqlite else together)
