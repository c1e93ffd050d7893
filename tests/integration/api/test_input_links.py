"""Signed input links: what a service that downloads inputs itself is given, and what it gets.

The worker hands the connector one link per input when the hub has a public address; the
link works over real HTTP without a login, for that file of that job only, until it expires
or the job ends. Everything else is refused without reading the file.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import User
from imputehub.files.links import LinkSigner
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import INPUT, drive, new_job, request_cancel
from tests.support.fake_connector import FakeConnector
from tests.support.hub_server import serving, url_of

LINK_SECONDS = 3600
# httpx's default 5 s: twice, in full parallel runs on a loaded 2-core machine (Beagle and a
# fresh `make run` in the other test process), the loop serving these requests was stalled
# longer than that. A hang still fails the test, at the suite's own timeout.
CLIENT_TIMEOUT = 30.0


@pytest.fixture
async def linked(
    settings: Settings, clock: FakeClock, tmp_path: Path, hub_socket: socket.socket
) -> AsyncIterator[tuple[Runtime, FakeConnector, str]]:
    """A hub with a public address, served on it, with the fake connector as "michigan"."""
    fake = FakeConnector(tmp_path / "fake.json")
    public = url_of(hub_socket)
    runtime = build_runtime(
        settings.model_copy(update={"public_url": public, "input_link_seconds": LINK_SECONDS}),
        clock=clock,
        connectors={"michigan": fake},
    )
    async with serving(create_app(runtime), hub_socket):
        yield runtime, fake, public
    await runtime.close()


async def submitted_link(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> tuple[str, str]:
    """Submit a new job through the worker; its id and the link its one input was given by."""
    now = clock.now()
    async with runtime.db.session() as session:
        user = User(username="dana", password_hash="!", role="user", created_at=now, updated_at=now)
        session.add(user)
    job = await new_job(runtime, user.id)
    await Worker(runtime).run_once()
    recorded = fake.job(job.id)
    assert recorded is not None, "the worker did not submit the job"
    (url,) = recorded["urls"]
    return job.id, url


def altered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


async def test_a_submitted_job_s_input_is_downloadable_by_its_link_without_a_login(
    linked: tuple[Runtime, FakeConnector, str], clock: FakeClock
) -> None:
    runtime, fake, public = linked
    job_id, url = await submitted_link(runtime, fake, clock)

    assert url.startswith(f"{public}/api/v1/links/{job_id}/")
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        whole = await client.get(url)
        part = await client.get(url, headers={"Range": "bytes=10-19"})

    assert whole.status_code == 200
    assert whole.content == INPUT
    assert whole.headers["content-type"] == "application/octet-stream"
    assert part.status_code == 206
    assert part.content == INPUT[10:20]


async def test_the_link_names_the_file_so_a_workflow_engine_keeps_its_name(
    linked: tuple[Runtime, FakeConnector, str], clock: FakeClock
) -> None:
    runtime, fake, _ = linked
    job_id, url = await submitted_link(runtime, fake, clock)
    recorded = fake.job(job_id)
    assert recorded is not None
    filename = recorded["inputs"][0]["name"]

    assert urlsplit(url).path.rsplit("/", 1)[-1] == filename


async def test_an_altered_or_expired_link_is_refused(
    linked: tuple[Runtime, FakeConnector, str], clock: FakeClock
) -> None:
    runtime, fake, _ = linked
    _, url = await submitted_link(runtime, fake, clock)
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    parts = urlsplit(url)
    other_name = parts._replace(path=parts.path.rsplit("/", 1)[0] + "/other.vcf.gz").geturl()
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        later = await client.get(altered(url, expires=str(expires + 3600)))
        forged = await client.get(altered(url, signature="0" * 64))
        # Not even ASCII (compare_digest refused such a str with a TypeError: a 500).
        foreign = await client.get(altered(url, signature="é" * 64))
        renamed = await client.get(other_name)
        unsigned = await client.get(url.split("?", 1)[0])
        clock.advance(LINK_SECONDS + 1)
        expired = await client.get(url)

    for answer in (later, forged, foreign, renamed, expired):
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"] == "this link is not valid or has expired"
        assert INPUT not in answer.content
    assert unsigned.status_code == 422  # the signature and expiry are required


async def test_a_link_stops_working_when_its_job_ends(
    linked: tuple[Runtime, FakeConnector, str], clock: FakeClock
) -> None:
    runtime, fake, _ = linked
    job_id, url = await submitted_link(runtime, fake, clock)
    await request_cancel(runtime, job_id)
    done = await drive(runtime, Worker(runtime), clock, job_id)
    assert done.status == "cancelled"

    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        answer = await client.get(url)

    assert answer.status_code == 410
    assert answer.json()["detail"] == "the job this link was made for has ended"


async def test_a_link_for_a_job_that_does_not_exist_reveals_nothing(
    linked: tuple[Runtime, FakeConnector, str],
) -> None:
    runtime, _, public = linked
    signer = LinkSigner.from_secret_key(runtime.secret_key)
    # Signed with the hub's own key for ids that name nothing: gone, not "no such file".
    url = signer.url(
        public, "no-such-job", "no-such-file", "x.vcf.gz", runtime.clock.now() + timedelta(hours=1)
    )
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        answer = await client.get(url)

    assert answer.status_code == 410


@pytest.mark.parametrize(
    "query",
    [
        {"expires": "soon", "signature": "ab"},
        {"expires": "-1", "signature": "ab"},
        {"expires": "1", "signature": "a" * 129},
        {"expires": str(2**41), "signature": "ab"},
    ],
    ids=["text-expiry", "negative-expiry", "long-signature", "huge-expiry"],
)
async def test_malformed_link_parameters_are_refused_plainly(
    linked: tuple[Runtime, FakeConnector, str], query: dict[str, str]
) -> None:
    _, _, public = linked
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        answer = await client.get(f"{public}/api/v1/links/j/f/x.vcf.gz", params=query)

    assert answer.status_code == 422


async def test_without_a_public_address_services_get_no_links(
    runtime: Runtime, clock: FakeClock, tmp_path: Path
) -> None:
    fake = FakeConnector(tmp_path / "fake.json")
    hub = build_runtime(runtime.settings, clock=clock, connectors={"michigan": fake})
    try:
        _, url = await submitted_link(hub, fake, clock)
    finally:
        await hub.close()

    assert url is None


def test_a_signature_covers_the_job_the_file_the_name_and_the_expiry() -> None:
    signer = LinkSigner.from_secret_key("k" * 40)
    base = signer.signature("job", "file", "a.vcf.gz", 100)

    assert signer.signature("job2", "file", "a.vcf.gz", 100) != base
    assert signer.signature("job", "file2", "a.vcf.gz", 100) != base
    assert signer.signature("job", "file", "b.vcf.gz", 100) != base
    assert signer.signature("job", "file", "a.vcf.gz", 101) != base
    assert LinkSigner.from_secret_key("j" * 40).signature("job", "file", "a.vcf.gz", 100) != base
