"""`imputehub submit` to a TOPMed-like Michigan server whose panels the admin synced.

The real Michigan connector and the emulated server: the choices the server offers decide
what a job may ask for, before a byte is uploaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.michigan import MichiganConnector
from imputehub.db.models import Job, StoredFile, Upload
from imputehub.runtime import Runtime, build_runtime
from tests.integration.cli.conftest import Cli
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.vcf import write_vcf

TOKEN = "platform-topmed-token-7"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        server.like_topmed()  # no beagle
        yield server


@pytest.fixture
async def runtime(live_settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = build_runtime(live_settings, clock=clock, connectors={"michigan": MichiganConnector()})
    yield rt
    await rt.close()


@pytest.fixture
async def topmed(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> None:
    service = await factories.make_service(
        runtime,
        slug="topmed",
        api_type="michigan",
        base_url=emulator.base_url,
        credential_encrypted=runtime.vault.encrypt(TOKEN),
    )
    synced = await client.post(f"/api/v1/services/{service.id}/sync-panels", headers=admin.headers)
    assert synced.status_code == 200, synced.text


async def count(runtime: Runtime, model: type[Job | StoredFile | Upload]) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_phasing_the_service_does_not_offer_is_refused_before_any_upload(
    runtime: Runtime, cli: Cli, topmed: None, emulator: MichiganEmulator, tmp_path: Path
) -> None:
    study = write_vcf(tmp_path / "study.chr20.vcf.gz", build="hg38", samples=25)
    submit = ("submit", str(study), "--service", "topmed", "--build", "hg38")
    panel = ("--panel", "apps@topmed-r3@1.0.0")  # the service's own panel id

    refused = await cli(*submit, *panel, "--phasing", "beagle", "--population", "all")

    assert refused.code == 1, refused
    assert "service 'topmed' offers no phasing 'beagle' (it offers: eagle, no_phasing)" in (
        refused.err
    )
    assert [await count(runtime, model) for model in (Job, StoredFile, Upload)] == [0, 0, 0]

    wrong_population = await cli(*submit, *panel, "--phasing", "eagle", "--population", "eur")
    assert wrong_population.code == 1
    assert "does not list population 'eur' (it lists: all)" in wrong_population.err

    accepted = await cli(*submit, *panel, "--phasing", "eagle", "--population", "all")
    assert accepted.code == 0, accepted
    assert "submitted job" in accepted.out
    assert [await count(runtime, model) for model in (Job, StoredFile)] == [1, 1]
    assert emulator.submit_posts() == 0  # no worker here: the hub holds the job
