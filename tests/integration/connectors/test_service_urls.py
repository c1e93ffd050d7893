"""URLs a service hands back reach only public addresses, unless an admin allows private ones.

A hostile service names an internal address (here `localhost:<port>`: the same loopback
server under another origin, so the server's request log shows whether the hub went
there) as a result, a redirect hop, a DRS object or access URL, a log, or a Michigan
presigned link. The hub refuses, says which host and which setting would allow it, and
stores nothing; the service's own origin keeps working, and `allow_private_urls: true`
lifts the rule for one service. Real servers on loopback (tests/support/tiny_wes.py, the
Michigan emulator); the public-address case without DNS, through httpx's MockTransport.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.connectors.base import ExternalRef, ServiceInfo
from imputehub.connectors.michigan import MichiganConnector
from imputehub.connectors.url_guard import GuardedTransport, UrlRefused, allows_private
from imputehub.connectors.wes import WesConnector
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.connectors.test_michigan import TOKEN, MemorySink, completed
from tests.integration.worker.support import drive, result_files
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.tiny_wes import DRS, Run, TinyState, tiny_server
from tests.support.wes_jobs import wes_hub_job

SECRET = b'{"AccessKeyId": "ASIA-the-hub-s-own-role"}'


def inward(url: str) -> str:
    """The same loopback server under another origin: a host name with a private address."""
    return url.replace("127.0.0.1", "localhost")


@pytest.fixture
def wes() -> Iterator[TinyState]:
    with tiny_server() as server:
        server.files = {"secret": SECRET, "out.gz": b"a result"}
        yield server


def service(server: TinyState, **config: object) -> ServiceInfo:
    return ServiceInfo(
        id="s", slug="w", api_type="ga4gh_wes", base_url=server.wes_url, api_config=config
    )


def completed_run(server: TinyState, outputs: object) -> ExternalRef:
    server.runs["r1"] = Run(run_id="r1", tags={}, states=["COMPLETE"])
    server.outputs = lambda run_id: outputs
    return ExternalRef(external_id="r1")


def secret_reads(server: TinyState) -> int:
    return len(server.requests("GET", "/files/secret"))


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
async def test_a_result_on_a_private_host_fails_the_job_naming_the_host_and_the_setting(
    runtime: Runtime, clock: FakeClock, wes: TinyState, allowed: bool
) -> None:
    wes.outputs = lambda run_id: {"creds": f"{inward(wes.url)}/files/secret"}
    config = {"allow_private_urls": True} if allowed else {}
    job = await wes_hub_job(runtime, wes.wes_url, **config)

    done = await drive(runtime, Worker(runtime), clock, job.id)

    stored = await result_files(runtime, job.id)
    if allowed:  # a service on the admin's own private network
        assert done.status == "completed", done.error_log
        assert [f.filename for f in stored] == ["creds"]
        return
    assert done.status == "failed"
    message = done.error_message or ""
    assert "'localhost'" in message, message
    assert "allow_private_urls: true" in message
    assert stored == []
    assert secret_reads(wes) == 0


async def test_every_redirect_hop_off_the_service_s_origin_is_checked(wes: TinyState) -> None:
    wes.redirects["/files/moved.gz"] = "/files/out.gz"  # on the service's own origin: fine
    wes.redirects["/files/bounce.gz"] = f"{inward(wes.url)}/files/secret"
    sink = MemorySink()
    connector = WesConnector()

    ok = completed_run(wes, {"a": f"{wes.url}/files/moved.gz"})
    await connector.fetch_results(service(wes), ok, None, sink)
    assert sink.files == {"a": b"a result"}

    bad = completed_run(wes, {"b": f"{wes.url}/files/bounce.gz"})
    with pytest.raises(UrlRefused, match="'localhost'"):
        await connector.fetch_results(service(wes), bad, None, MemorySink())
    assert secret_reads(wes) == 0


async def test_a_drs_object_or_access_url_on_a_private_host_is_never_fetched(
    wes: TinyState,
) -> None:
    host = inward(wes.url).removeprefix("http://")
    connector = WesConnector()
    on_private_drs = completed_run(wes, {"x": {"class": "File", "location": f"drs://{host}/o"}})
    with pytest.raises(UrlRefused, match="'localhost'"):
        await connector.fetch_results(
            service(wes, drs_scheme="http"), on_private_drs, None, MemorySink()
        )
    assert wes.requests("GET", DRS) == []

    # The WES server's own DRS object, whose access URL points inward.
    wes.drs_objects["o"] = {
        "id": "o",
        "access_methods": [
            {"type": "https", "access_url": {"url": f"{inward(wes.url)}/files/secret"}}
        ],
    }
    own = wes.url.removeprefix("http://")
    private_access = completed_run(wes, {"x": {"class": "File", "location": f"drs://{own}/o"}})
    with pytest.raises(UrlRefused, match="allow_private_urls"):
        await connector.fetch_results(
            service(wes, drs_scheme="http"), private_access, None, MemorySink()
        )
    assert len(wes.requests("GET", f"{DRS}o")) == 1
    assert secret_reads(wes) == 0


async def test_a_log_url_on_a_private_host_is_noted_not_read(wes: TinyState) -> None:
    wes.runs["r1"] = Run(run_id="r1", tags={}, states=["EXECUTOR_ERROR"])
    wes.run_log = lambda run_id: {"stderr": f"{inward(wes.url)}/files/secret", "exit_code": 1}

    status = await WesConnector().poll(service(wes), ExternalRef(external_id="r1"), None)

    notes = [line for line in status.logs if line.startswith("stderr: the log at")]
    assert len(notes) == 1, status.logs
    assert "allow_private_urls" in notes[0]
    assert "ASIA" not in " ".join(status.logs) + (status.message or "")
    assert secret_reads(wes) == 0


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN)
        yield server


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
async def test_a_michigan_redirect_to_a_private_host_is_refused_unless_allowed(
    emulator: MichiganEmulator, allowed: bool
) -> None:
    config = {"allow_private_urls": True} if allowed else {}
    michigan = ServiceInfo(
        id="m", slug="mis", api_type="michigan", base_url=emulator.base_url, api_config=config
    )
    ref = await completed(michigan)
    emulator.redirect = True
    emulator.presigned_base = inward(emulator.base_url)
    sink = MemorySink()
    connector = MichiganConnector()

    if allowed:
        await connector.fetch_results(michigan, ref, TOKEN, sink)
        assert "chr20.dose.vcf.gz" in sink.files
        assert emulator.presigned
        return
    with pytest.raises(UrlRefused, match="the Michigan server named a URL on host 'localhost'"):
        await connector.fetch_results(michigan, ref, TOKEN, sink)
    assert emulator.presigned == []
    assert sink.files == {}


# --- the guard itself, for public addresses (no DNS here: address literals) --------------


def recording(
    answers: dict[str, httpx.Response],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[request.url.path]

    return httpx.MockTransport(answer), seen


async def test_a_public_address_is_fetched_and_a_hop_to_a_metadata_address_is_not() -> None:
    inner, seen = recording(
        {
            "/result": httpx.Response(200, content=b"dose"),
            "/moved": httpx.Response(
                302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
            ),
        }
    )
    guard = GuardedTransport(own_origin="https://wes.example.org/ga4gh/wes/v1", service="s")
    guard.inner = inner
    async with httpx.AsyncClient(transport=guard, follow_redirects=True) as client:
        answer = await client.get("https://93.184.216.34:8443/result")
        assert answer.content == b"dose"
        with pytest.raises(UrlRefused, match=r"'169\.254\.169\.254'"):
            await client.get("https://93.184.216.34:8443/moved")
        for hostile in ("http://[::ffff:127.0.0.1]/x", "http://10.0.0.8/x", "http://0.0.0.0/x"):
            with pytest.raises(UrlRefused):
                await client.get(hostile)
    assert [str(r.url) for r in seen] == [
        "https://93.184.216.34:8443/result",
        "https://93.184.216.34:8443/moved",
    ]
    assert seen[0].headers["Host"] == "93.184.216.34:8443"
    assert seen[0].extensions["sni_hostname"] == "93.184.216.34"


def test_only_a_literal_true_allows_private_urls() -> None:
    assert allows_private({"allow_private_urls": True})
    assert not allows_private({"allow_private_urls": "yes"})
    assert not allows_private({})
