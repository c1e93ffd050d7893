"""Live events over real HTTP (server-sent events), read from the database by every process.

The app is served on loopback (httpx's ASGI transport does not stream); the worker moves
jobs in the test's event loop while clients listen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.app import create_app
from imputehub.cli.sse import ServerEvent, parse
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, User
from imputehub.domain.jobs import JobStatus
from imputehub.notify import outbox
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive, load_job, new_job
from tests.support.api import Actor
from tests.support.fake_connector import FakeConnector
from tests.support.hub_server import serving

WAIT = 15.0  # a hang fails the test instead of blocking it


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "events_poll_seconds": 0.05,
            "events_keepalive_seconds": 0.3,
            "events_recheck_seconds": 0.2,
        }
    )


@pytest.fixture
async def runtime(  # type: ignore[no-untyped-def]
    live_settings: Settings, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Runtime]:
    fake = FakeConnector(tmp_path / "fake.json")
    rt = build_runtime(live_settings, clock=clock, connectors={"michigan": fake})
    yield rt
    await rt.close()


class Listener:
    """One open event stream: messages in arrival order."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> ServerEvent:
        block: list[str] = []
        async with asyncio.timeout(WAIT):
            async for line in self._lines:
                if line:
                    block.append(line)
                    continue
                found = list(parse([*block, ""]))
                block = []
                if found:
                    return found[0]
        raise AssertionError("the stream ended")

    async def take(self, count: int) -> list[ServerEvent]:
        return [await self.next() for _ in range(count)]

    async def rest(self) -> list[ServerEvent]:
        """Every message until the server ends the stream."""
        found: list[ServerEvent] = []
        block: list[str] = []
        async with asyncio.timeout(WAIT):
            async for line in self._lines:
                if line:
                    block.append(line)
                else:
                    found.extend(parse([*block, ""]))
                    block = []
        return found


@asynccontextmanager
async def listening(
    url: str, path: str, actor: Actor | None, headers: dict[str, str] | None = None
) -> AsyncIterator[Listener]:
    sent = dict(actor.headers if actor else {}) | (headers or {})
    async with (
        httpx.AsyncClient(base_url=url, timeout=WAIT) as http,
        http.stream("GET", path, headers=sent) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Listener(response)


def data(message: ServerEvent) -> dict[str, Any]:
    found = json.loads(message.data)
    assert isinstance(found, dict)
    return found


async def record(runtime: Runtime, job_id: str, status: JobStatus) -> None:
    """A third party (another process, say) commits a job change and its event."""
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.status = status.value
        outbox.job_changed(session, job, status, now=runtime.clock.now(), message="")


async def test_events_arrive_live_as_the_worker_moves_a_job(
    runtime: Runtime, hub_url: str, alice: Actor, clock: FakeClock
) -> None:
    job = await new_job(runtime, alice.id, name="chr20")
    worker = Worker(runtime)
    async with listening(hub_url, "/api/v1/events", alice) as stream:
        # The first step: the job is submitted and queued; the stream says so at once.
        await drive(runtime, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))
        first = await stream.next()
        assert (first.event, data(first)["payload"]["status"]) == ("job.queued", "queued")
        assert data(first)["title"] == "Job 'chr20' is queued"
        assert data(first)["job_id"] == job.id

        await drive(runtime, worker, clock, job.id)
        rest = await stream.take(3)
    assert [m.event for m in rest] == ["job.running", "job.completed", "job.results_ready"]
    ids = [int(m.id or 0) for m in [first, *rest]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    assert data(rest[-1])["payload"]["files"] >= 1


async def test_a_client_reconnecting_with_last_event_id_gets_exactly_what_it_missed(
    runtime: Runtime, hub_url: str, alice: Actor
) -> None:
    job = await new_job(runtime, alice.id)
    async with listening(hub_url, "/api/v1/events", alice) as stream:
        await record(runtime, job.id, JobStatus.QUEUED)
        await record(runtime, job.id, JobStatus.RUNNING)
        seen = await stream.take(2)
    # Disconnected; meanwhile the job ends.
    await record(runtime, job.id, JobStatus.FAILED)
    await record(runtime, job.id, JobStatus.CANCELLED)
    last = seen[-1].id
    assert last is not None

    async with listening(hub_url, "/api/v1/events", alice, {"Last-Event-ID": last}) as stream:
        missed = await stream.take(2)
        await record(runtime, job.id, JobStatus.QUEUED)
        live = await stream.next()
    assert [m.event for m in seen] == ["job.queued", "job.running"]
    assert [m.event for m in missed] == ["job.failed", "job.cancelled"]
    assert live.event == "job.queued"
    ids = [m.id for m in [*seen, *missed, live]]
    assert len(set(ids)) == 5, "no event twice"

    # The job stream resumes the same way, here with the query parameter.
    async with listening(
        hub_url, f"/api/v1/jobs/{job.id}/events?last_event_id={last}", alice
    ) as stream:
        kinds = [m.event for m in await stream.take(3)]
    assert kinds == ["job.failed", "job.cancelled", "job.queued"]


async def test_two_api_processes_both_deliver_an_event_written_by_a_third(
    live_settings: Settings, clock: FakeClock, runtime: Runtime, alice: Actor
) -> None:
    job = await new_job(runtime, alice.id)
    first = build_runtime(live_settings, clock=clock)
    second = build_runtime(live_settings, clock=clock)
    try:
        async with (
            serving(create_app(first)) as one,
            serving(create_app(second)) as two,
            listening(one, "/api/v1/events", alice) as a,
            listening(two, "/api/v1/events", alice) as b,
        ):
            await record(runtime, job.id, JobStatus.QUEUED)  # the third: neither API process
            got_a, got_b = await asyncio.gather(a.next(), b.next())
    finally:
        await first.close()
        await second.close()
    assert got_a.event == got_b.event == "job.queued"
    assert got_a.id == got_b.id
    assert data(got_a)["job_id"] == data(got_b)["job_id"] == job.id


async def test_the_job_stream_replays_the_job_reports_progress_and_ends_with_it(
    runtime: Runtime, hub_url: str, alice: Actor, clock: FakeClock
) -> None:
    job = await new_job(runtime, alice.id)
    other = await new_job(runtime, alice.id)
    await record(runtime, other.id, JobStatus.QUEUED)  # another job: not in this stream
    await drive(runtime, Worker(runtime), clock, job.id)

    async with listening(hub_url, f"/api/v1/jobs/{job.id}/events", alice) as stream:
        messages = await stream.rest()  # the server ends it: the job has ended

    assert [m.event for m in messages] == [
        "job.queued",
        "job.running",
        "job.completed",
        "job.results_ready",
        "job.progress",
    ]
    progress = messages[-1]
    assert progress.id is None  # not a resume point
    assert data(progress)["payload"]["status"] == "completed"
    assert data(progress)["payload"]["progress"] == 100.0
    assert all(data(m)["job_id"] == job.id for m in messages)


async def test_a_quiet_stream_gets_keep_alive_comments(
    runtime: Runtime, hub_url: str, alice: Actor
) -> None:
    async with (
        httpx.AsyncClient(base_url=hub_url, timeout=WAIT) as http,
        http.stream("GET", "/api/v1/events", headers=alice.headers) as response,
    ):
        lines = response.aiter_lines()
        async with asyncio.timeout(WAIT):
            async for line in lines:
                if line == ": keep-alive":
                    break


async def test_a_stream_ends_once_its_token_is_revoked(
    runtime: Runtime, hub_url: str, alice: Actor
) -> None:
    async with listening(hub_url, "/api/v1/events", alice) as stream:
        async with runtime.db.session() as session:
            user = await session.get(User, alice.id)
            assert user is not None
            user.token_version += 1  # what a password change does
        # Checked again within the recheck interval: the server says why and closes.
        messages = await stream.rest()
    assert [m.event for m in messages] == ["stream.closed"]
    assert data(messages[0])["payload"]["code"] == "token_revoked"


async def test_streams_need_a_token_and_the_callers_own_job(
    runtime: Runtime, hub_url: str, alice: Actor, bob: Actor
) -> None:
    job = await new_job(runtime, alice.id)
    async with httpx.AsyncClient(base_url=hub_url, timeout=WAIT) as http:
        for path in ("/api/v1/events", f"/api/v1/jobs/{job.id}/events"):
            anonymous = await http.get(path)
            assert anonymous.status_code == 401
            assert anonymous.json()["code"] == "authentication_required"
            forged = await http.get(path, params={"access_token": "not-a-token"})
            assert forged.status_code == 401

        others = await http.get(f"/api/v1/jobs/{job.id}/events", headers=bob.headers)
        assert others.status_code == 404
        assert others.json()["code"] == "not_found"

        for bad in ("abc", "-1", "1.5", "9" * 30):
            refused = await http.get(
                "/api/v1/events", headers=alice.headers | {"Last-Event-ID": bad}
            )
            assert refused.status_code == 400, bad
            assert refused.json()["code"] == "invalid_last_event_id"
            assert bad not in refused.json()["detail"]  # not echoed back

    # EventSource cannot send headers: the token in the query works on these routes.
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    async with listening(hub_url, f"/api/v1/events?access_token={token}", None) as stream:
        await record(runtime, job.id, JobStatus.QUEUED)
        assert (await stream.next()).event == "job.queued"
    async with httpx.AsyncClient(base_url=hub_url, timeout=WAIT) as http:
        elsewhere = await http.get("/api/v1/jobs", params={"access_token": token})
        assert elsewhere.status_code == 401  # only the two stream routes take it


def cli_as(actor: Actor, hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line of `actor`, talking to the hub at `hub`."""
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(tmp_path / "client"))
    monkeypatch.setenv("IMPUTEHUB_URL", hub)
    monkeypatch.setenv("IMPUTEHUB_TOKEN", actor.headers["Authorization"].removeprefix("Bearer "))


async def test_jobs_watch_prints_the_stages_of_a_job_driven_by_a_worker(
    runtime: Runtime,
    hub_url: str,
    alice: Actor,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from imputehub.cli.main import run

    cli_as(alice, hub_url, tmp_path, monkeypatch)
    job = await new_job(runtime, alice.id)

    # In a thread: the CLI is synchronous and the server runs in this event loop.
    watching = asyncio.create_task(asyncio.to_thread(run, ["jobs", "watch", job.id]))
    worker = Worker(runtime)
    await drive(runtime, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))
    # The watcher has printed the queued job before the job moves on.
    printed, err = "", ""
    async with asyncio.timeout(WAIT):
        while " queued" not in printed:
            await asyncio.sleep(0.02)
            seen = capsys.readouterr()
            printed, err = printed + seen.out, err + seen.err
    await drive(runtime, worker, clock, job.id)
    async with asyncio.timeout(WAIT):
        code = await watching

    rest = capsys.readouterr()
    out, err = printed + rest.out, err + rest.err
    assert code == 0, err
    statuses = [line.split()[1] for line in out.splitlines()[:-1]]
    assert statuses[0] in ("pending", "queued")
    assert "running" in statuses
    assert statuses[-1] == "completed"
    assert out.splitlines()[-1] == "job completed"
    assert "100.0 %" in out.splitlines()[-2]
    assert (await load_job(runtime, job.id)).status == "completed"


async def test_jobs_watch_exits_1_with_the_reason_when_the_job_fails(
    runtime: Runtime,
    hub_url: str,
    alice: Actor,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from imputehub.cli.main import run

    cli_as(alice, hub_url, tmp_path, monkeypatch)
    job = await new_job(runtime, alice.id)
    fake = runtime.connectors["michigan"]
    assert isinstance(fake, FakeConnector)
    fake.configure(job.id, permanent={"submit": "panel not found at the service"})
    await drive(runtime, Worker(runtime), clock, job.id)

    code = await asyncio.wait_for(asyncio.to_thread(run, ["jobs", "watch", job.id]), WAIT)

    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[-1].split()[1] == "failed"
    assert err.startswith("job failed: ")
    assert "panel not found at the service" in err


class CuttableProxy:
    """A TCP relay in front of the hub whose open connections the test can cut."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.relayed = bytearray()  # everything sent to the client (a test's few kilobytes)
        self.more = asyncio.Event()  # set when `relayed` grows

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers |= {writer, up_writer}

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, seen: bytearray | None = None
        ) -> None:
            try:
                while chunk := await src.read(65536):
                    if seen is not None:
                        seen += chunk
                        self.more.set()
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer, self.relayed))

    async def streamed(self, text: bytes) -> None:
        """Until an event stream has carried `text` to the client."""
        async with asyncio.timeout(WAIT):
            while text not in self.relayed.partition(b"text/event-stream")[2]:
                self.more.clear()
                await self.more.wait()

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_jobs_watch_resumes_after_a_dropped_connection_without_repeating(
    runtime: Runtime,
    hub_url: str,
    alice: Actor,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from imputehub.cli.main import run

    proxy = CuttableProxy(hub_url)
    via = await proxy.start()
    cli_as(alice, via, tmp_path, monkeypatch)
    job = await new_job(runtime, alice.id)
    worker = Worker(runtime)
    await drive(runtime, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))
    try:
        watching = asyncio.create_task(
            asyncio.to_thread(run, ["jobs", "watch", job.id, "--interval", "0.1"])
        )
        await proxy.streamed(b"queued")  # the watcher's stream has the queued job
        proxy.cut()  # the connection drops mid-stream
        await drive(runtime, worker, clock, job.id)
        async with asyncio.timeout(WAIT):
            code = await watching
    finally:
        await proxy.stop()

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "trying again" in err  # it noticed the drop and reconnected
    lines = out.splitlines()
    assert lines[-1] == "job completed"
    statuses = [line.split()[1] for line in lines[:-1]]
    assert statuses[0] == "queued"
    assert statuses.count("queued") == 1, out  # nothing shown twice after the reconnect
    assert statuses[-1] == "completed"
