"""Service slots: jobs beyond an account's free slots wait in the hub, handed out fairly."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.db.models import Job, Service
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import (
    CREDENTIAL,
    INPUT,
    drive,
    load_job,
    status_updates,
)
from tests.support import factories
from tests.support.fake_connector import FakeConnector


async def shared_service(hub: Runtime, **api_config: object) -> tuple[Service, object]:
    service = await factories.make_service(
        hub, credential_encrypted=hub.vault.encrypt(CREDENTIAL), api_config=api_config
    )
    panel = await factories.make_panel(hub, service)
    return service, panel


async def jobs_for(
    hub: Runtime, clock: FakeClock, service: Service, panel: object, user_id: str, n: int
) -> list[str]:
    made = []
    for _ in range(n):
        stored = await factories.make_file(hub, user_id, INPUT)
        job = await factories.make_job(
            hub, user_id=user_id, service=service, panel=panel, files=[stored]
        )
        made.append(job.id)
        clock.advance(1)  # creation order is the order of arrival
    return made


async def submitted(hub: Runtime, ids: list[str]) -> list[str]:
    async with hub.db.session() as session:
        rows = await session.scalars(
            select(Job.id).where(Job.id.in_(ids), Job.submit_started_at.is_not(None))
        )
        return sorted(rows)


async def test_jobs_beyond_the_free_slots_wait_in_the_hub_and_say_where_they_stand(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1000)  # the first jobs keep their slots
    service, panel = await shared_service(hub)  # Michigan's default: 2 per account
    ids = await jobs_for(hub, clock, service, panel, user_id, 4)

    await Worker(hub).run_once()

    assert await submitted(hub, ids) == sorted(ids[:2])
    assert [fake.submissions(i) for i in ids] == [1, 1, 0, 0]
    third, fourth = await load_job(hub, ids[2]), await load_job(hub, ids[3])
    assert (third.status, fourth.status) == ("queued", "queued")
    assert third.attempts == 0  # waiting is no failure
    (update,) = await status_updates(hub, ids[2])
    waiting = f"waiting for a free slot at {service.name}: 2 of 2 in use; 1st in line"
    assert update.message == waiting
    (update,) = await status_updates(hub, ids[3])
    assert update.message.endswith("2 of 2 in use; 2nd in line")

    # Nothing changes while the slots stay taken, however often the worker looks.
    for _ in range(5):
        clock.advance(60)
        await Worker(hub).run_once()
    assert [fake.submissions(i) for i in ids] == [1, 1, 0, 0]


async def test_a_finished_job_hands_its_slot_to_the_next_in_line_at_once(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=2)
    service, panel = await shared_service(hub)
    ids = await jobs_for(hub, clock, service, panel, user_id, 3)
    worker = Worker(hub)
    await worker.run_once()
    assert await submitted(hub, ids) == sorted(ids[:2])

    # A few seconds of polls: the first two finish; the third is submitted without waiting
    # for its own next look (minutes away).
    for _ in range(6):
        clock.advance(1)
        await worker.run_once()

    third = await load_job(hub, ids[2])
    assert fake.submissions(ids[2]) == 1
    assert third.created_at + timedelta(minutes=1) > hub.clock.now()
    # Once submitted it is followed like any job: polled, fetched, never submitted again.
    done = await drive(hub, worker, clock, ids[2])
    assert done.status == "completed"
    assert fake.submissions(ids[2]) == 1
    assert [c["op"] for c in fake.calls(key=ids[2])] == ["submit", "poll", "poll", "fetch"]


async def test_slots_go_round_robin_between_users_then_oldest_first(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1000)
    other = await factories.make_user(hub, email="other@example.org")
    service, panel = await shared_service(hub, max_jobs_per_user=3)
    # The first user queues five jobs, then the other user one.
    first = await jobs_for(hub, clock, service, panel, user_id, 5)
    late = await jobs_for(hub, clock, service, panel, other.id, 1)

    await Worker(hub).run_once()

    # Three slots: the first user's two oldest, and the other user's one, although it came
    # last (a user's turn counts the jobs they already have at the service).
    assert await submitted(hub, first + late) == sorted([first[0], first[1], late[0]])
    (update,) = await status_updates(hub, first[2])
    assert update.message.endswith("3 of 3 in use; 1st in line")


async def test_a_user_with_their_own_credential_has_their_own_slots(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1000)
    own = await factories.make_user(hub, email="own@example.org")
    service, panel = await shared_service(hub)
    await factories.make_user_credential(hub, own.id, service, "own-token")
    shared = await jobs_for(hub, clock, service, panel, user_id, 3)
    mine = await jobs_for(hub, clock, service, panel, own.id, 2)

    await Worker(hub).run_once()

    assert await submitted(hub, shared + mine) == sorted(shared[:2] + mine)


async def test_a_limit_the_service_states_replaces_the_hub_s(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1000, busy_limit=1)  # the account allows one job
    service, panel = await shared_service(hub)
    ids = await jobs_for(hub, clock, service, panel, user_id, 2)

    await Worker(hub).run_once()

    async with hub.db.session() as session:
        row = await session.get(Service, service.id)
        assert row is not None
        assert row.api_config["max_jobs_per_user"] == 1
    second = await load_job(hub, ids[1])
    assert second.attempts == 0
    assert JobStatus(second.status) in (JobStatus.PENDING, JobStatus.QUEUED)
