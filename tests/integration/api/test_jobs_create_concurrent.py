"""Many users creating jobs at once: every creation lands, each job once, with its files.

On SQLite the writers of one process take turns (db/session.py `_WriteTurn`) instead of racing
for the database's lock; on PostgreSQL each locks only its own user's row.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from imputehub.db import session as db_session
from imputehub.db.models import Job, JobInput
from imputehub.db.session import lock_writers
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


async def test_writers_take_turns_on_sqlite(runtime: Runtime) -> None:
    """Two transactions about to write: on SQLite the second waits until the first has
    committed; on PostgreSQL, locking different keys, both go at once."""
    inside: list[str] = []
    seen: list[int] = []  # how many writers were inside as each came in

    async def writer(name: str, key: int) -> None:
        async with runtime.db.session() as session:
            await lock_writers(session, key, Job)
            inside.append(name)
            seen.append(len(inside))
            await asyncio.sleep(0.05)
            inside.remove(name)

    await asyncio.gather(writer("a", 101), writer("b", 102))
    assert seen == ([1, 1] if runtime.db.is_sqlite else [1, 2])


async def test_a_failed_writer_leaves_its_turn(runtime: Runtime) -> None:
    async def fail_while_writing() -> None:
        async with runtime.db.session() as session:
            await lock_writers(session, 101, Job)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_while_writing()
    async with asyncio.timeout(5), runtime.db.session() as session:
        await lock_writers(session, 101, Job)  # not stuck behind the failed one


async def test_a_writer_waiting_too_long_fails_like_a_busy_database(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a writer inside another writer of the same task can never get its turn: it
    fails after the wait SQLite itself allows (shortened here), never hangs. PostgreSQL
    locks keys, not the database: the inner writer of another key goes ahead."""
    monkeypatch.setattr(db_session, "TURN_TIMEOUT_SECONDS", 0.2)

    async def write_inside_a_writer() -> None:
        async with runtime.db.session() as outer:
            await lock_writers(outer, 101, Job)
            async with runtime.db.session() as inner:
                await lock_writers(inner, 102, Job)

    if runtime.db.is_sqlite:
        with pytest.raises(OperationalError, match="other SQLite writers"):
            await write_inside_a_writer()
    else:
        async with asyncio.timeout(5):
            await write_inside_a_writer()


async def test_a_writer_given_up_while_waiting_does_not_hold_up_the_next(
    runtime: Runtime,
) -> None:
    """A request cancelled while it waits for its turn (its client went away) leaves the
    queue: the writer after it still gets in."""
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with runtime.db.session() as session:
            await lock_writers(session, 101, Job)
            first_in.set()
            await release_first.wait()

    async def waiting() -> None:
        async with runtime.db.session() as session:
            await lock_writers(session, 102, Job)

    holder = asyncio.create_task(first())
    await first_in.wait()
    given_up = asyncio.create_task(waiting())
    await asyncio.sleep(0.05)  # queued behind the first (on SQLite)
    given_up.cancel()
    release_first.set()
    await holder
    with contextlib.suppress(asyncio.CancelledError):
        await given_up
    async with asyncio.timeout(5), runtime.db.session() as session:
        await lock_writers(session, 103, Job)  # not stuck behind the one given up
