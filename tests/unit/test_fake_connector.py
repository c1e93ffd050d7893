"""The fake imputation service the worker tests drive: it must behave as it promises."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imputehub.connectors.base import (
    ExternalRef,
    ExternalState,
    ResultFile,
)
from imputehub.domain.errors import JobLost, PermanentServiceError, TransientServiceError
from tests.support.fake_connector import (
    DEFAULT_RESULTS,
    SAMPLE_INPUT,
    SAMPLE_SERVICE,
    FakeConnector,
    sample_spec,
)

SERVICE = SAMPLE_SERVICE


class MemorySink:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        data = b"".join([chunk async for chunk in chunks])
        self.files[name] = data
        return ResultFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def fake(tmp_path: Path) -> FakeConnector:
    return FakeConnector(tmp_path / "fake.json")


async def test_submit_streams_the_inputs_and_is_found_by_its_key(fake: FakeConnector) -> None:
    ref = await fake.submit(SERVICE, sample_spec("job-1"), "secret", "job-1")

    assert await fake.find(SERVICE, "job-1", None) == ref
    assert await fake.find(SERVICE, "job-2", None) is None
    assert fake.submissions("job-1") == 1
    record = fake.job("job-1")
    assert record is not None
    assert record["external_id"] == ref.external_id
    assert record["inputs"] == [
        {
            "name": "study.vcf.gz",
            "size": len(SAMPLE_INPUT),
            "sha256": hashlib.sha256(SAMPLE_INPUT).hexdigest(),
        }
    ]
    assert record["credential"] == "secret"


async def test_polls_go_queued_then_running_with_progress_then_completed(
    fake: FakeConnector,
) -> None:
    fake.configure(polls_to_finish=4)
    ref = await fake.submit(SERVICE, sample_spec(), None, "job-1")

    seen = [await fake.poll(SERVICE, ref, None) for _ in range(5)]

    assert [s.state for s in seen] == [
        ExternalState.QUEUED,
        ExternalState.RUNNING,
        ExternalState.RUNNING,
        ExternalState.COMPLETED,
        ExternalState.COMPLETED,
    ]
    assert seen[0].queue_position == 1
    assert seen[1].progress is not None
    assert seen[2].progress is not None
    assert 0 < seen[1].progress < seen[2].progress < 100
    assert seen[3].logs == ("poll 1", "poll 2", "poll 3", "poll 4")


async def test_a_failed_outcome_carries_the_service_message(fake: FakeConnector) -> None:
    ref = await fake.submit(SERVICE, sample_spec(), None, "job-1")
    fake.configure("job-1", polls_to_finish=1, outcome="failed", failure_message="bad VCF")

    status = await fake.poll(SERVICE, ref, None)

    assert status.state == ExternalState.FAILED
    assert status.message == "bad VCF"


async def test_transient_failures_are_counted_per_job_then_calls_succeed(
    fake: FakeConnector,
) -> None:
    fake.configure(transient={"submit": 2}, retry_after=7.0)

    for attempt in (1, 2):
        with pytest.raises(TransientServiceError) as error:
            await fake.submit(SERVICE, sample_spec("job-1"), None, "job-1")
        assert error.value.retry_after == 7.0
        assert f"failure {attempt}" in error.value.message
    await fake.submit(SERVICE, sample_spec("job-1"), None, "job-1")
    with pytest.raises(TransientServiceError):
        await fake.submit(SERVICE, sample_spec("job-2"), None, "job-2")

    assert fake.submissions("job-1") == 1
    assert fake.submissions("job-2") == 0
    assert len(fake.calls("submit", "job-1")) == 3


async def test_permanent_failures_and_lost_jobs(fake: FakeConnector) -> None:
    fake.configure("job-1", permanent={"submit": "panel not found"})
    with pytest.raises(PermanentServiceError, match="panel not found"):
        await fake.submit(SERVICE, sample_spec("job-1"), None, "job-1")

    ref = await fake.submit(SERVICE, sample_spec("job-2"), None, "job-2")
    fake.configure("job-2", lose=True)
    with pytest.raises(JobLost):
        await fake.poll(SERVICE, ref, None)
    with pytest.raises(JobLost):
        await fake.poll(SERVICE, ExternalRef(external_id="nope"), None)


async def test_cancel_is_recorded_unless_refused(fake: FakeConnector) -> None:
    first = await fake.submit(SERVICE, sample_spec("job-1"), None, "job-1")
    second = await fake.submit(SERVICE, sample_spec("job-2"), None, "job-2")
    fake.configure("job-2", refuse_cancel=True)

    await fake.cancel(SERVICE, first, None)
    with pytest.raises(PermanentServiceError, match="refused"):
        await fake.cancel(SERVICE, second, None)

    assert fake.cancels() == ["job-1"]
    assert (await fake.poll(SERVICE, first, None)).state == ExternalState.CANCELLED


async def test_results_are_streamed_into_the_sink_once_completed(fake: FakeConnector) -> None:
    ref = await fake.submit(SERVICE, sample_spec(), None, "job-1")
    sink = MemorySink()
    with pytest.raises(PermanentServiceError):
        await fake.fetch_results(SERVICE, ref, None, sink)

    fake.configure(polls_to_finish=1, results={"out.txt": b"imputed" * 10})
    await fake.poll(SERVICE, ref, None)
    files = await fake.fetch_results(SERVICE, ref, None, sink)

    assert sink.files == {"out.txt": b"imputed" * 10}
    assert files == [
        ResultFile(name="out.txt", size=70, sha256=hashlib.sha256(b"imputed" * 10).hexdigest())
    ]


async def test_default_results(fake: FakeConnector) -> None:
    fake.configure(polls_to_finish=1)
    ref = await fake.submit(SERVICE, sample_spec(), None, "job-1")
    await fake.poll(SERVICE, ref, None)
    sink = MemorySink()
    await fake.fetch_results(SERVICE, ref, None, sink)
    assert sink.files == DEFAULT_RESULTS


async def test_a_held_call_has_reached_the_service_before_it_answers(
    fake: FakeConnector,
) -> None:
    gate = fake.hold("submit")
    task = asyncio.create_task(fake.submit(SERVICE, sample_spec(), None, "job-1"))
    for _ in range(200):
        if fake.submissions("job-1"):
            break
        await asyncio.sleep(0.01)

    assert fake.submissions("job-1") == 1
    assert not task.done()
    gate.set()
    ref = await asyncio.wait_for(task, 5)
    record = fake.job("job-1")
    assert record is not None
    assert record["external_id"] == ref.external_id


def test_unknown_behaviour_is_refused(fake: FakeConnector) -> None:
    with pytest.raises(ValueError, match="unknown fake behaviour"):
        fake.configure(explode=True)


SUBMITTER = """
import asyncio, sys
from pathlib import Path
from tests.support.fake_connector import SAMPLE_SERVICE, FakeConnector, sample_spec

async def main():
    fake = FakeConnector(Path(sys.argv[1]), label=sys.argv[2])
    for n in range(10):
        key = f"{sys.argv[2]}-{n}"
        await fake.submit(SAMPLE_SERVICE, sample_spec(key), None, key)

asyncio.run(main())
"""


def test_state_is_shared_by_processes(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    state = tmp_path / "fake.json"
    FakeConnector(state)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(state), f"p{n}"], cwd=pytestconfig.rootpath
        )
        for n in range(4)
    ]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0, 0, 0]

    snapshot = FakeConnector(state).snapshot()
    assert len(snapshot["jobs"]) == 40  # distinct external ids: no lost update
    assert all(count == 1 for count in snapshot["submissions"].values())
    assert {call["label"] for call in snapshot["calls"]} == {"p0", "p1", "p2", "p3"}
