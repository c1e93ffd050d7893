"""Which credential a job is submitted and followed with, and the job's secret for the service."""

from __future__ import annotations

import string

from sqlalchemy import delete, select

from imputehub.clock import FakeClock
from imputehub.db.models import Service, UserServiceCredential
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import CREDENTIAL, drive, load_job, new_job
from tests.support.fake_connector import FakeConnector

OWN = "alices-own-token-9876"


async def _own_credential(hub: Runtime, user_id: str, service_id: str) -> None:
    now = hub.clock.now()
    async with hub.db.session() as session:
        session.add(
            UserServiceCredential(
                user_id=user_id,
                service_id=service_id,
                credential_encrypted=hub.vault.encrypt(OWN),
                last_four=OWN[-4:],
                created_at=now,
                updated_at=now,
            )
        )


async def test_the_platform_credential_is_used_when_the_user_has_none(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed"
    assert done.credential_source == "platform"
    submitted = fake.job(job.id)
    assert submitted is not None
    assert submitted["credential"] == CREDENTIAL
    assert submitted["fetch_credential"] == CREDENTIAL


async def test_a_users_own_credential_wins_and_follows_the_job_to_the_end(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    await _own_credential(hub, user_id, job.service_id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed"
    assert done.credential_source == "user"
    submitted = fake.job(job.id)
    assert submitted is not None
    assert (submitted["credential"], submitted["fetch_credential"]) == (OWN, OWN)


async def test_removing_the_credential_a_job_was_submitted_with_fails_it_plainly(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=50)
    job = await new_job(hub, user_id)
    await _own_credential(hub, user_id, job.service_id)
    worker = Worker(hub)
    await worker.run_once()  # submitted with the user's own credential
    async with hub.db.session() as session:
        await session.execute(delete(UserServiceCredential))

    done = await drive(hub, worker, clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "credential this job was submitted with was removed" in done.error_message
    assert OWN not in done.error_message


async def test_each_job_gets_its_own_secret_kept_encrypted_and_handed_back_at_fetch(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    first = await new_job(hub, user_id)
    second = await new_job(hub, user_id)

    await drive(hub, Worker(hub), clock, first.id)
    await drive(hub, Worker(hub), clock, second.id)

    secrets = []
    for job_id in (first.id, second.id):
        submitted = fake.job(job_id)
        assert submitted is not None
        secret = submitted["secret"]
        assert len(secret) == 32
        assert set(secret) <= set(string.ascii_letters + string.digits)
        assert submitted["fetch_secret"] == secret  # the hub can decrypt the results
        stored = (await load_job(hub, job_id)).service_secret_encrypted
        assert stored is not None
        assert secret not in stored  # encrypted at rest
        assert hub.vault.decrypt(stored) == secret
        secrets.append(secret)
    assert secrets[0] != secrets[1]


async def test_a_refused_own_credential_fails_the_job_and_is_marked_unverified(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(reject_credential=["submit"])
    job = await new_job(hub, user_id)
    await _own_credential(hub, user_id, job.service_id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "failed"
    assert done.error_message == "the service refused the credential (HTTP 401)"
    async with hub.db.session() as session:
        own = await session.scalar(select(UserServiceCredential))
        assert own is not None
        assert own.verified is False
        service = await session.get(Service, job.service_id)
        assert service is not None
        assert service.credential_verified is None  # the platform's was not the one refused


async def test_a_refused_platform_credential_is_marked_unverified(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(reject_credential=["submit"])
    job = await new_job(hub, user_id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "failed"
    async with hub.db.session() as session:
        service = await session.get(Service, job.service_id)
        assert service is not None
        assert service.credential_verified is False
