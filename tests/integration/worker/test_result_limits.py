"""A service is untrusted: the results of one job are bounded as they stream into storage.

Past the limit (the service's `max_result_bytes`, else IMPUTEHUB_MAX_RESULT_BYTES_PER_JOB)
or past the owner's storage quota, the job fails plainly and the file that crossed it is
not stored, not even in part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job
from imputehub.domain.errors import PermanentServiceError
from imputehub.runtime import Runtime
from imputehub.worker.leases import Claim
from imputehub.worker.loop import Worker
from imputehub.worker.sink import StorageSink, human_bytes, result_limit
from tests.integration.worker.conftest import make_hub
from tests.integration.worker.support import (
    INPUT,
    drive,
    new_job,
    result_files,
    stored_bytes,
)
from tests.support.fake_connector import FakeConnector

FIRST = b"a" * 100
SECOND = b"b" * 100  # with FIRST, past a limit of 150 bytes
LIMIT_MESSAGE = (
    "the results of this job exceed the limit of 150 bytes "
    "(IMPUTEHUB_MAX_RESULT_BYTES_PER_JOB, or the service's max_result_bytes); "
    "nothing more was stored"
)


def leftovers(hub: Runtime, job_id: str) -> list[str]:
    """Every file (temporary ones too) the local storage holds for the job's results."""
    folder = Path(hub.storage.root) / "results" / job_id  # type: ignore[attr-defined]
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


async def test_results_past_the_services_limit_fail_the_job_and_are_not_stored(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1, results={"first.txt": FIRST, "second.txt": SECOND})
    job = await new_job(hub, user_id, service_fields={"api_config": {"max_result_bytes": 150}})

    failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message == LIMIT_MESSAGE
    files = await result_files(hub, job.id)
    assert [(f.filename, f.size) for f in files] == [("first.txt", 100)]
    assert await stored_bytes(hub, files[0].storage_key) == FIRST
    assert not await hub.storage.exists(f"results/{job.id}/second.txt")
    assert leftovers(hub, job.id) == ["first.txt"]


async def test_the_hub_wide_setting_bounds_services_without_their_own_limit(
    settings: Settings, clock: FakeClock, fake: FakeConnector, user_id: str
) -> None:
    fake.configure(polls_to_finish=1, results={"first.txt": FIRST, "second.txt": SECOND})
    async with make_hub(settings, clock, fake, max_result_bytes_per_job=150) as hub:
        # Not a positive whole number: the setting applies.
        job = await new_job(hub, user_id, service_fields={"api_config": {"max_result_bytes": "x"}})

        failed = await drive(hub, Worker(hub), clock, job.id)

        assert failed.error_message == LIMIT_MESSAGE
        assert [f.filename for f in await result_files(hub, job.id)] == ["first.txt"]
        assert leftovers(hub, job.id) == ["first.txt"]


async def test_results_within_the_limit_are_all_stored(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1, results={"first.txt": FIRST, "second.txt": SECOND})
    job = await new_job(hub, user_id, service_fields={"api_config": {"max_result_bytes": 200}})

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed"
    assert [f.size for f in await result_files(hub, job.id)] == [100, 100]


async def test_results_past_the_owners_storage_quota_fail_the_job(
    settings: Settings, clock: FakeClock, fake: FakeConnector, user_id: str
) -> None:
    fake.configure(polls_to_finish=1, results={"first.txt": FIRST, "second.txt": SECOND})
    # The job's input counts too: room for 150 bytes of results.
    async with make_hub(settings, clock, fake, storage_quota_bytes=len(INPUT) + 150) as hub:
        job = await new_job(hub, user_id)

        failed = await drive(hub, Worker(hub), clock, job.id)

        assert failed.status == "failed"
        assert failed.error_message == (
            "the results of this job exceed what is left of the owner's storage quota of "
            f"{len(INPUT) + 150} bytes (IMPUTEHUB_STORAGE_QUOTA_BYTES); nothing more was stored"
        )
        assert [f.filename for f in await result_files(hub, job.id)] == ["first.txt"]
        assert leftovers(hub, job.id) == ["first.txt"]


async def test_storing_a_file_again_does_not_count_its_old_copy(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1, results={"first.txt": FIRST})
    job = await new_job(hub, user_id, service_fields={"api_config": {"max_result_bytes": 150}})
    await drive(hub, Worker(hub), clock, job.id)
    claim = Claim(job_id=job.id, step="fetch", owner="test")
    async with hub.db.session() as session:
        row = await session.get(Job, job.id)
        assert row is not None
        row.lease_owner = "test"

    def body(data: bytes) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield data

        return chunks()

    sink = StorageSink(hub, claim, user_id=user_id)
    await sink.store("first.txt", body(b"c" * 150))  # replaces the 100 bytes: fits
    assert [f.size for f in await result_files(hub, job.id)] == [150]

    with pytest.raises(PermanentServiceError, match="limit of 150 bytes"):
        await StorageSink(hub, claim, user_id=user_id).store("other.txt", body(b"d"))
    assert leftovers(hub, job.id) == ["first.txt"]


@pytest.mark.parametrize(
    ("config", "limit"),
    [
        ({}, 7),
        ({"max_result_bytes": 5}, 5),
        ({"max_result_bytes": 0}, 7),
        ({"max_result_bytes": -1}, 7),
        ({"max_result_bytes": True}, 7),
        ({"max_result_bytes": 5.5}, 7),
        ({"max_result_bytes": "5"}, 7),
    ],
)
def test_a_services_limit_counts_only_as_a_positive_whole_number(
    config: dict[str, object], limit: int
) -> None:
    assert result_limit(config, 7) == limit


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (200 * 1024**3, "200 GiB"),
        (1024**4, "1 TiB"),
        (16 * 1024**2, "16 MiB"),
        (2048, "2 KiB"),
        (1536, "1536 bytes"),
        (150, "150 bytes"),
    ],
)
def test_sizes_read_in_whole_binary_units(size: int, text: str) -> None:
    assert human_bytes(size) == text
