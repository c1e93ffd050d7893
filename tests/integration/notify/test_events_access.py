"""Live event streams keep checking who listens, and each user holds only so many.

Served over real HTTP on loopback, like test_events_stream (whose helpers these share).
Streams here are kept busy on purpose: a stream that only checked its caller when idle
would never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest

from imputehub.accounts import api_tokens
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import ApiToken, Job, User
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime, build_runtime
from tests.integration.notify.test_events_stream import WAIT, data, listening, record
from tests.integration.worker.support import new_job
from tests.support.api import Actor

RECHECK = 0.2


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    # Keep-alives are never due while events flow: only the recheck can end these streams.
    return settings.model_copy(
        update={
            "events_poll_seconds": 0.05,
            "events_keepalive_seconds": 0.3,
            "events_recheck_seconds": RECHECK,
        }
    )


@pytest.fixture
async def runtime(live_settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = build_runtime(live_settings, clock=clock)
    yield rt
    await rt.close()


@contextlib.asynccontextmanager
async def busy(runtime: Runtime, job_id: str) -> AsyncIterator[None]:
    """Another process keeps changing the job (an event each time) until the block ends."""

    async def churn() -> None:
        for status in itertools.cycle((JobStatus.QUEUED, JobStatus.RUNNING)):
            await record(runtime, job_id, status)
            await asyncio.sleep(0.03)

    task = asyncio.create_task(churn())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def update_user(runtime: Runtime, user_id: str, **fields: object) -> None:
    async with runtime.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        for name, value in fields.items():
            setattr(user, name, value)


async def test_a_busy_stream_ends_soon_after_its_account_is_deactivated(
    runtime: Runtime, hub_url: str, alice: Actor
) -> None:
    job = await new_job(runtime, alice.id)
    async with listening(hub_url, "/api/v1/events", alice) as stream, busy(runtime, job.id):
        assert len(await stream.take(3)) == 3  # flowing
        await update_user(runtime, alice.id, is_active=False)
        rest = await stream.rest()  # the server ends it (a hang fails after WAIT)
    last = rest[-1]
    assert last.event == "stream.closed"
    assert last.id is None  # not a resume point
    assert data(last)["payload"] == {
        "code": "authentication_required",
        "reason": "account not found or deactivated",
    }
    assert all(m.event.startswith("job.") for m in rest[:-1])


async def test_a_busy_stream_ends_once_its_api_token_is_deleted(
    runtime: Runtime, hub_url: str, alice: Actor
) -> None:
    async with runtime.db.session() as session:
        user = await session.get(User, alice.id)
        assert user is not None
        made = await api_tokens.create_token(session, user, name="ci", now=runtime.clock.now())
    as_token = Actor(
        id=alice.id, username=alice.username, headers={"Authorization": f"Bearer {made.token}"}
    )
    job = await new_job(runtime, alice.id)
    async with listening(hub_url, "/api/v1/events", as_token) as stream, busy(runtime, job.id):
        await stream.take(2)
        async with runtime.db.session() as session:
            token = await session.get(ApiToken, made.record.id)
            assert token is not None
            await session.delete(token)
        last = (await stream.rest())[-1]
    assert last.event == "stream.closed"
    assert data(last)["payload"]["code"] == "authentication_required"


async def test_a_job_stream_ends_once_the_job_is_someone_elses(
    runtime: Runtime, hub_url: str, alice: Actor, bob: Actor
) -> None:
    job = await new_job(runtime, alice.id)
    path = f"/api/v1/jobs/{job.id}/events"
    async with listening(hub_url, path, alice) as stream, busy(runtime, job.id):
        await stream.take(3)
        async with runtime.db.session() as session:
            found = await session.get(Job, job.id)
            assert found is not None
            found.user_id = bob.id
        last = (await stream.rest())[-1]
    assert last.event == "stream.closed"
    assert data(last)["job_id"] == job.id
    assert data(last)["payload"] == {"code": "not_found", "reason": f"job {job.id} not found"}


async def opens(hub_url: str, path: str, actor: Actor) -> httpx.Response:
    """The answer to opening a stream (closed again at once), body read unless 200."""
    async with (
        httpx.AsyncClient(base_url=hub_url, timeout=WAIT) as http,
        http.stream("GET", path, headers=actor.headers) as response,
    ):
        if response.status_code != 200:
            await response.aread()
        return response


async def test_each_user_holds_at_most_the_allowed_streams_and_closing_one_frees_it(
    runtime: Runtime, hub_url: str, alice: Actor, bob: Actor
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"max_streams_per_user": 2})
    job = await new_job(runtime, alice.id)
    async with listening(hub_url, "/api/v1/events", alice):
        async with listening(hub_url, f"/api/v1/jobs/{job.id}/events", alice):
            for path in ("/api/v1/events", f"/api/v1/jobs/{job.id}/events"):
                refused = await opens(hub_url, path, alice)
                assert refused.status_code == 429
                assert refused.headers["content-type"] == "application/problem+json"
                body = refused.json()
                assert body["code"] == "too_many_streams"
                assert body["limit"] == 2
                assert "IMPUTEHUB_MAX_STREAMS_PER_USER" in body["detail"]
            # Another user's streams are counted apart.
            assert (await opens(hub_url, "/api/v1/events", bob)).status_code == 200

        # The job stream is closed by its client: its place comes free once the server
        # notices the disconnect.
        async with asyncio.timeout(WAIT):
            while True:
                if (await opens(hub_url, "/api/v1/events", alice)).status_code == 200:
                    break
                await asyncio.sleep(0.05)
