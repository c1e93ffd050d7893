"""Faults of DNAstack Workbench, through the hub: the worker, the real connector, the hub
serving its signed input links on loopback, and the emulated Workbench
(tests/support/dnastack_emulator.py) answering slowly, with 500s or malformed JSON, hanging
up halfway through a result, or its token endpoint failing. Each job completes with every
result byte the Workbench served, says why it waited, and is submitted exactly once.
"""

from __future__ import annotations

import json

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.connectors.wes import connector as wes_connector
from imputehub.db.models import Job, Service
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.connectors import test_dnastack as hub_e2e
from tests.integration.connectors.test_dnastack import NAMESPACE, dnastack_job, input_vcf
from tests.integration.worker.support import drive, result_files, status_updates, stored_bytes
from tests.support.dnastack_emulator import DnastackEmulator

DOSE = "study.chr20.dose.vcf.gz"
INFO = "study.chr20.info"

# The hub end-to-end fixtures of test_dnastack.py (the Workbench emulator; the hub served on
# loopback at its public URL), bound here so pytest finds them by name.
emulator = hub_e2e.emulator
settings = hub_e2e.settings
hub_url = hub_e2e.hub_url


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # An eWES answer slower than this is a timeout; the emulator's slow answers take 2 s.
    monkeypatch.setattr(wes_connector, "API_TIMEOUT", httpx.Timeout(0.5))


async def follow(runtime: Runtime, clock: FakeClock, job: Job) -> Job:
    return await drive(runtime, Worker(runtime), clock, job.id, rounds=40)


async def messages(runtime: Runtime, job_id: str) -> list[str]:
    return [u.message or "" for u in await status_updates(runtime, job_id)]


async def submitted(
    runtime: Runtime, clock: FakeClock, job: Job, emulator: DnastackEmulator
) -> str:
    """Run the worker until the job's run is at the Workbench; the run's id."""
    worker = Worker(runtime)
    for _ in range(5):
        await worker.run_once()
        if emulator.accepted():
            return emulator.run_tagged(job.id).id
        clock.advance(1.0)
    raise AssertionError("the job never reached the Workbench")


def run_path(run_id: str) -> str:
    return f"/ewes/{NAMESPACE}/ga4gh/wes/v1/runs/{run_id}"


async def assert_completed_once(
    runtime: Runtime, done: Job, emulator: DnastackEmulator, content: bytes
) -> None:
    """Completed, submitted once, and its results are exactly what the Workbench served."""
    assert done.status == "completed", done.error_log
    assert len(emulator.accepted()) == 1
    run = emulator.run_tagged(done.id)
    assert done.external_job_id == run.id
    files = {f.filename: f for f in await result_files(runtime, done.id)}
    assert sorted(files) == [DOSE, INFO]
    for name in (DOSE, INFO):
        served = run.files[name].read_bytes()
        assert await stored_bytes(runtime, files[name].storage_key) == served
    assert run.files[DOSE].read_bytes() == content


@pytest.mark.parametrize(
    ("fault", "times", "said_why"),
    [
        ("500", 4, "the WES service answered HTTP 500"),
        ("slow", 2, "did not answer within 0.5 s"),  # slower than the (shortened) timeout
        ("malformed", 2, "the WES service sent a malformed answer"),
    ],
    ids=["500-burst", "slower-than-the-timeout", "malformed-json"],
)
async def test_a_run_status_fault_delays_the_job_until_the_workbench_recovers(
    runtime: Runtime,
    clock: FakeClock,
    emulator: DnastackEmulator,
    hub_url: str,
    fault: str,
    times: int,
    said_why: str,
) -> None:
    content = input_vcf()
    job = await dnastack_job(runtime, emulator, content)
    run_id = await submitted(runtime, clock, job, emulator)
    emulator.fault(run_path(run_id), fault, times=times)

    done = await follow(runtime, clock, job)

    await assert_completed_once(runtime, done, emulator, content)
    said = await messages(runtime, job.id)
    assert any(said_why in m for m in said), said
    assert [kind for _, _, kind in emulator.faulted] == [fault] * times


async def test_a_result_download_cut_off_halfway_keeps_no_part_and_is_fetched_again_whole(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    content = input_vcf()
    job = await dnastack_job(runtime, emulator, content)
    run_id = await submitted(runtime, clock, job, emulator)
    emulator.fault(f"/outputs/{run_id}/{DOSE}", "drop")
    worker = Worker(runtime)
    for _ in range(10):  # until the cut-off download has happened
        await worker.run_once()
        clock.advance(1.0)
        if emulator.faulted:
            break
    assert emulator.faulted == [("GET", f"/outputs/{run_id}/{DOSE}", "drop")]
    # Between the broken fetch and the next one, nothing of the half file passes for a result.
    assert await result_files(runtime, job.id) == []
    assert not await runtime.storage.exists(f"results/{job.id}/{DOSE}")

    done = await follow(runtime, clock, job)

    await assert_completed_once(runtime, done, emulator, content)
    said = await messages(runtime, job.id)
    assert any(f"the download of result {DOSE} broke off" in m for m in said), said
    assert emulator.downloads.count(DOSE) == 2


async def mark_verified(runtime: Runtime, service_id: str) -> None:
    async with runtime.db.session() as session:
        service = await session.get(Service, service_id)
        assert service is not None
        service.credential_verified = True
        service.credential_verified_at = runtime.clock.now()


async def credential_verified(runtime: Runtime, service_id: str) -> bool | None:
    async with runtime.db.session() as session:
        service = await session.get(Service, service_id)
        assert service is not None
        return service.credential_verified


async def test_a_burst_of_500s_at_the_token_endpoint_waits_and_keeps_the_credential_verified(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    content = input_vcf()
    job = await dnastack_job(runtime, emulator, content)
    await mark_verified(runtime, job.service_id)
    emulator.fault("/oauth/token", "500", times=3)

    done = await follow(runtime, clock, job)

    await assert_completed_once(runtime, done, emulator, content)
    said = await messages(runtime, job.id)
    assert any("the token endpoint answered HTTP 500" in m for m in said), said
    assert [kind for _, _, kind in emulator.faulted] == ["500"] * 3
    # An outage of the token endpoint says nothing about the client secret.
    assert await credential_verified(runtime, job.service_id) is True


async def test_a_token_endpoint_outage_after_the_workbench_ended_the_token_is_waited_out(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    content = input_vcf()
    job = await dnastack_job(runtime, emulator, content)
    await mark_verified(runtime, job.service_id)
    await submitted(runtime, clock, job, emulator)
    # The hub's cached token is refused (401) and a new one cannot be had for a while.
    emulator.expire_tokens()
    emulator.fault("/oauth/token", "500", times=3)

    done = await follow(runtime, clock, job)

    await assert_completed_once(runtime, done, emulator, content)
    said = await messages(runtime, job.id)
    assert any("the token endpoint answered HTTP 500" in m for m in said), said
    assert not any("refused" in m for m in said), said
    assert await credential_verified(runtime, job.service_id) is True


# --- the emulator's fault switches themselves ---


async def drained(client: httpx.AsyncClient, url: str) -> tuple[bytes, Exception | None]:
    """What a GET of `url` delivered before it ended, and the error it ended with."""
    received = b""
    try:
        async with client.stream("GET", url) as response:
            async for chunk in response.aiter_bytes():
                received += chunk
    except httpx.TransportError as exc:
        return received, exc
    return received, None


async def test_the_emulator_serves_each_fault_as_many_times_as_asked_then_the_real_answer(
    emulator: DnastackEmulator,
) -> None:
    info = f"{emulator.endpoint()}/{NAMESPACE}/ga4gh/wes/v1/service-info"
    path = httpx.URL(info).path
    emulator.slow_seconds = 0.3
    async with httpx.AsyncClient() as client:
        real = (await client.get(info)).content
        emulator.fault(path, "500", times=2)
        errors = [(await client.get(info)).status_code for _ in range(2)]
        emulator.fault(path, "malformed")
        malformed = await client.get(info)
        emulator.fault(path, "drop")
        received, broke = await drained(client, info)
        emulator.fault(path, "slow", times=2)
        with pytest.raises(httpx.ReadTimeout):
            await client.get(info, timeout=0.1)
        patient = await client.get(info, timeout=5.0)
        after = await client.get(info)

    assert errors == [500, 500]
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    assert isinstance(broke, httpx.RemoteProtocolError)
    assert received == real[: len(real) // 2]
    assert patient.content == real
    assert after.content == real
    assert [kind for _, _, kind in emulator.faulted] == ["500", "500", "malformed", "drop"] + [
        "slow"
    ] * 2
