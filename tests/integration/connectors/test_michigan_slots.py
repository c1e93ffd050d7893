"""The hub as a fair queue in front of a Michigan server's per-account job slots.

Two users share the hub's platform credential at the emulated server, which allows two
jobs per account (Cloudgene's default) and refuses a third only after reading its upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.db.models import ReferencePanel, Service
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive, load_job
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import MichiganEmulator, running_emulator

TOKEN = "platform-michigan-token-42"
PANEL = "apps@1000g-phase-3-v5@2.0.0"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


async def michigan(runtime: Runtime, emulator: MichiganEmulator) -> tuple[Service, ReferencePanel]:
    service = await factories.make_service(
        runtime,
        slug="michigan",
        name="Michigan",
        api_type="michigan",
        base_url=emulator.base_url,
        credential_encrypted=runtime.vault.encrypt(TOKEN),
    )
    panel = await factories.make_panel(runtime, service, panel_id=PANEL, populations=["eur"])
    return service, panel


async def job_of(
    runtime: Runtime,
    clock: FakeClock,
    user: Actor,
    service: Service,
    panel: ReferencePanel,
) -> str:
    stored = await factories.make_file(runtime, user.id)
    job = await factories.make_job(
        runtime, user_id=user.id, service=service, panel=panel, files=[stored], population="eur"
    )
    clock.advance(1)
    return job.id


async def test_two_users_share_the_platform_account_s_slots_fairly(
    runtime: Runtime,
    clock: FakeClock,
    client: httpx.AsyncClient,
    emulator: MichiganEmulator,
    alice: Actor,
    bob: Actor,
) -> None:
    service, panel = await michigan(runtime, emulator)
    worker = Worker(runtime)
    # Alice's first two jobs take the account's two slots...
    a1, a2 = [await job_of(runtime, clock, alice, service, panel) for _ in range(2)]
    await worker.run_once()
    assert sorted(accepted(emulator)) == sorted([a1, a2])
    # ...then she queues a third, and Bob his first.
    a3 = await job_of(runtime, clock, alice, service, panel)
    b1 = await job_of(runtime, clock, bob, service, panel)

    await worker.run_once()

    # Both wait in the hub, nothing uploaded; Bob's is next although it came last.
    assert len(accepted(emulator)) == 2
    answer = (await client.get(f"/api/v1/jobs/{b1}", headers=bob.headers)).json()
    assert answer["status"] == "queued"
    assert answer["slot_wait"] == {"in_use": 2, "limit": 2, "place": 1}
    answer = (await client.get(f"/api/v1/jobs/{a3}", headers=alice.headers)).json()
    assert answer["slot_wait"] == {"in_use": 2, "limit": 2, "place": 2}
    # A user sees where their job stands, never whose jobs are ahead.
    hidden = await client.get(f"/api/v1/jobs/{a3}", headers=bob.headers)
    assert hidden.status_code == 404

    # Alice cancels her first job: its slot goes to Bob's, at once.
    cancelled = await client.post(f"/api/v1/jobs/{a1}/cancel", headers=alice.headers)
    assert cancelled.status_code in (200, 202), cancelled.text
    await worker.run_once()  # the cancel reaches the server and frees the slot
    await worker.run_once()
    assert accepted(emulator)[2:] == [b1]
    answer = (await client.get(f"/api/v1/jobs/{a3}", headers=alice.headers)).json()
    assert answer["slot_wait"] == {"in_use": 2, "limit": 2, "place": 1}

    for job_id in (a2, a3, b1):
        done = await drive(runtime, worker, clock, job_id)
        assert done.status == "completed", done.error_log

    # Nothing was uploaded that the server refused: one upload per job, each accepted.
    assert accepted(emulator)[3:] == [a3]
    assert emulator.submit_posts() == 4
    assert all(s["status"] == 200 for s in emulator.submissions)
    finished = (await client.get(f"/api/v1/jobs/{a3}", headers=alice.headers)).json()
    assert finished["slot_wait"] is None


def accepted(emulator: MichiganEmulator) -> list[str]:
    """The hub job ids the server accepted, in order."""
    return [s["fields"]["job-name"][0] for s in emulator.accepted()]


async def test_a_limit_the_server_states_after_an_upload_becomes_the_hub_s(
    runtime: Runtime, clock: FakeClock, emulator: MichiganEmulator, alice: Actor
) -> None:
    # The server allows one job per account; the hub believes Cloudgene's default of two.
    emulator.job_limit = 1
    service, panel = await michigan(runtime, emulator)
    first = await job_of(runtime, clock, alice, service, panel)
    second = await job_of(runtime, clock, alice, service, panel)
    worker = Worker(runtime)

    await worker.run_once()
    clock.advance(1)
    await worker.run_once()

    async with runtime.db.session() as session:
        row = await session.get(Service, service.id)
        assert row is not None
        assert row.api_config["max_jobs_per_user"] == 1
    # One upload was taken, the other refused (uploads run side by side: either may win);
    # the refused job waits for the one slot without counting a failed attempt.
    [taken] = accepted(emulator)
    [refused] = [job_id for job_id in (first, second) if job_id != taken]
    waiting = await load_job(runtime, refused)
    assert waiting.attempts == 0
    assert "Only 1 jobs per user" in str(waiting.error_log)

    done = await drive(runtime, worker, clock, taken)
    assert done.status == "completed"
    done = await drive(runtime, worker, clock, refused, rounds=400, advance=5)
    assert done.status == "completed", done.error_log
    assert accepted(emulator) == [taken, refused]
