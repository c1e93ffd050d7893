"""A user's own credential for a Michigan-type service sees only the panels its account may
use: storing or verifying it compares them with the hub's, the status says so, and job
creation refuses the panels it does not see. Real HTTP against the emulated server."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from imputehub.cli.main import run
from imputehub.db.models import ReferencePanel, Service
from imputehub.files.vcf_check import check_bytes
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.vcf import make_vcf

PLATFORM = "platform-michigan-token-42"
FEWER = "alice-own-token-without-topmed-Q7xZ"  # sees hapmap and 1000G, not TOPMed
SAME = "alice-own-token-with-every-panel-8Hw2"
ONLY_TOPMED = "bob-own-token-with-topmed-only-K2pL"
TOPMED = "apps@topmed-r3@1.0.0"
HAPMAP = "apps@hapmap-2@2.0.0"
THOUSAND = "apps@1000g-phase-3-v5@2.0.0"
MISSING_TOPMED = (
    f"Your account at Michigan does not see 1 of the hub's panels ({TOPMED}): "
    "jobs you submit with your own token cannot use it."
)
REFUSAL = "your own credential for Michigan does not give access to panel"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(PLATFORM, username="hub")
        server.add_token(FEWER, username="alice", panels=[HAPMAP, THOUSAND])
        server.add_token(SAME, username="alice")
        server.add_token(ONLY_TOPMED, username="bob", panels=[TOPMED])
        yield server


@pytest.fixture
async def michigan(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, emulator: MichiganEmulator
) -> Service:
    """A Michigan service with a platform credential that sees every panel, synced."""
    service = await factories.make_service(
        runtime,
        name="Michigan",
        slug="michigan",
        api_type="michigan",
        base_url=emulator.base_url,
        credential_encrypted=runtime.vault.encrypt(PLATFORM),
    )
    synced = await client.post(f"/api/v1/services/{service.id}/sync-panels", headers=admin.headers)
    assert synced.status_code == 200, synced.text
    assert len(synced.json()["added"]) == 3
    return service


def credential_url(service: Service, suffix: str = "") -> str:
    return f"/api/v1/services/{service.id}/credential{suffix}"


async def put(
    client: httpx.AsyncClient, service: Service, actor: Actor, credential: str
) -> httpx.Response:
    return await client.put(
        credential_url(service), json={"credential": credential}, headers=actor.headers
    )


def job_body(panel: str, input_file_ids: list[str] | None = None) -> dict[str, Any]:
    """A job for `panel` (hg38 for TOPMed, hg19 for the others): with stored files, or a
    dry run's file described."""
    build = "hg38" if panel == TOPMED else "hg19"
    body: dict[str, Any] = {
        "name": "chr20 study",
        "service_id": "michigan",
        "reference_panel_id": panel,
        "build": build,
        "phasing": "eagle",
    }
    if input_file_ids is not None:
        return {**body, "input_file_ids": input_file_ids}
    content = make_vcf(build=build, samples=25)
    report = check_bytes([content]).to_dict()
    return {
        **body,
        "files": [{"filename": "study.vcf.gz", "size": len(content), "report": report}],
    }


async def check_job(client: httpx.AsyncClient, actor: Actor, panel: str) -> httpx.Response:
    return await client.post("/api/v1/jobs/check", json=job_body(panel), headers=actor.headers)


async def test_a_credential_seeing_fewer_panels_is_told_and_refused_those_panels(
    runtime: Runtime,
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    michigan: Service,
    emulator: MichiganEmulator,
) -> None:
    stored = await put(client, michigan, alice, FEWER)

    assert stored.status_code == 200, stored.text
    status = stored.json()
    assert status["panels_missing"] == [TOPMED]
    assert status["panels_extra"] == []
    assert status["panels_message"] == MISSING_TOPMED
    assert FEWER not in stored.text
    # Recorded: the status says it later too.
    shown = await client.get(credential_url(michigan), headers=alice.headers)
    assert shown.json()["panels_missing"] == [TOPMED]
    assert shown.json()["panels_message"] == MISSING_TOPMED

    # The dry run and job creation refuse that panel, naming it; nothing reaches the server.
    checked = await check_job(client, alice, TOPMED)
    assert checked.status_code == 422, checked.text
    assert checked.json()["field"] == "reference_panel_id"
    assert REFUSAL in checked.json()["detail"]
    assert TOPMED in checked.json()["detail"]
    assert "remove your credential to use the hub's" in checked.json()["detail"]
    upload = await factories.make_file(runtime, alice.id, make_vcf(build="hg38", samples=25))
    created = await client.post(
        "/api/v1/jobs",
        json=job_body(TOPMED, input_file_ids=[upload.id]),
        headers=alice.headers,
    )
    assert created.status_code == 422, created.text
    assert REFUSAL in created.json()["detail"]
    assert (await client.get("/api/v1/jobs", headers=alice.headers)).json()["total"] == 0
    assert emulator.submit_posts() == 0

    # The panels the credential sees still work, and so does TOPMed for a user whose jobs
    # use the platform credential.
    assert (await check_job(client, alice, HAPMAP)).status_code == 200
    assert (await check_job(client, alice, THOUSAND)).status_code == 200
    assert (await check_job(client, bob, TOPMED)).status_code == 200

    # Without her own credential, her jobs use the hub's, which sees TOPMed.
    assert (await client.delete(credential_url(michigan), headers=alice.headers)).status_code == 204
    assert (await check_job(client, alice, TOPMED)).status_code == 200


async def test_verify_compares_again_and_a_credential_seeing_the_same_panels_says_nothing(
    client: httpx.AsyncClient,
    alice: Actor,
    michigan: Service,
    emulator: MichiganEmulator,
) -> None:
    await put(client, michigan, alice, SAME)
    shown = await client.get(credential_url(michigan), headers=alice.headers)
    assert shown.json()["panels_missing"] == []
    assert shown.json()["panels_extra"] == []
    assert shown.json()["panels_message"] is None
    assert (await check_job(client, alice, TOPMED)).status_code == 200

    # The account loses TOPMed at the server: verifying finds out.
    emulator.tokens[SAME]["panels"] = [HAPMAP, THOUSAND]
    verified = await client.post(credential_url(michigan, "/verify"), headers=alice.headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True
    assert verified.json()["panels_missing"] == [TOPMED]
    assert verified.json()["panels_message"] == MISSING_TOPMED
    assert (await check_job(client, alice, TOPMED)).status_code == 422

    # Access granted again: the next verification lifts the refusal.
    emulator.tokens[SAME]["panels"] = None
    verified = await client.post(credential_url(michigan, "/verify"), headers=alice.headers)
    assert verified.json()["panels_missing"] == []
    assert verified.json()["panels_message"] is None
    assert (await check_job(client, alice, TOPMED)).status_code == 200


async def test_panels_the_hub_does_not_offer_are_named_too(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    bob: Actor,
    michigan: Service,
) -> None:
    # The hub withdrew TOPMed; bob's account sees only TOPMed.
    async with runtime.db.session() as session:
        await session.execute(
            update(ReferencePanel).where(ReferencePanel.panel_id == TOPMED).values(is_active=False)
        )

    status = (await put(client, michigan, bob, ONLY_TOPMED)).json()

    assert status["panels_missing"] == [THOUSAND, HAPMAP]
    assert status["panels_extra"] == [TOPMED]
    assert status["panels_message"] == (
        f"Your account at Michigan does not see 2 of the hub's panels ({THOUSAND}, {HAPMAP}): "
        "jobs you submit with your own token cannot use them."
    )


async def test_users_see_only_their_own_and_the_platform_status_has_no_panels(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    bob: Actor,
    michigan: Service,
) -> None:
    await put(client, michigan, alice, FEWER)

    as_bob = await client.get(credential_url(michigan), headers=bob.headers)
    anonymous = await client.get(credential_url(michigan))
    platform = await client.get(
        credential_url(michigan), params={"scope": "platform"}, headers=admin.headers
    )
    bob_verifies = await client.post(credential_url(michigan, "/verify"), headers=bob.headers)

    assert as_bob.status_code == 200
    assert as_bob.json()["set"] is False
    assert as_bob.json()["panels_missing"] is None
    assert as_bob.json()["panels_message"] is None
    assert anonymous.status_code == 401
    assert platform.json()["panels_missing"] is None
    assert platform.json()["panels_message"] is None
    assert bob_verifies.status_code == 409
    # Bob's jobs are not refused for alice's account.
    assert (await check_job(client, bob, TOPMED)).status_code == 200


async def test_a_service_that_cannot_answer_leaves_the_panels_unknown(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor
) -> None:
    down = await factories.make_service(
        runtime,
        name="Down",
        slug="down",
        api_type="michigan",
        base_url="http://127.0.0.1:9",  # nothing listens there
    )
    await factories.make_panel(runtime, down, slug="down-panel", panel_id=TOPMED)

    stored = await put(client, down, alice, FEWER)

    assert stored.status_code == 200, stored.text
    assert stored.json()["last_four"] == "Q7xZ"
    assert stored.json()["panels_missing"] is None
    assert stored.json()["panels_message"] is None


# --- the command line -------------------------------------------------------------------------


async def test_cli_prints_the_sentence(
    tmp_path: Path,
    hub_url: str,
    alice: Actor,
    michigan: Service,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(tmp_path / "client"))
    monkeypatch.setenv("IMPUTEHUB_URL", hub_url)
    monkeypatch.setenv("IMPUTEHUB_TOKEN", alice.headers["Authorization"].removeprefix("Bearer "))

    async def cli(*args: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = await asyncio.to_thread(run, ["services", "credential", *args])
        return code, capsys.readouterr().out

    code, out = await cli("set", "michigan", "--credential-stdin", stdin=FEWER + "\n")
    assert code == 0
    assert out == f"michigan (user): set (ends in Q7xZ), not verified\n  {MISSING_TOPMED}\n"

    code, out = await cli("verify", "michigan")
    assert code == 0
    assert out.startswith("michigan (user): set (ends in Q7xZ), verified: valid")
    assert out.endswith(f"\n  {MISSING_TOPMED}\n")

    code, out = await cli("show", "michigan")
    assert out.endswith(f"\n  {MISSING_TOPMED}\n")

    await cli("set", "michigan", "--credential-stdin", stdin=SAME + "\n")
    code, out = await cli("show", "michigan")
    assert out == "michigan (user): set (ends in 8Hw2), not verified\n"
