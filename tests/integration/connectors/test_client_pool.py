"""Pooled keep-alive clients (connectors/clients.py), seen from a loopback server: polls reuse
one connection, an edited service reaches its new address, shutdown closes the connections,
and network failures read as before."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from imputehub.config import Settings
from imputehub.connectors.base import ExternalRef, ExternalState, HealthStatus, ServiceInfo
from imputehub.connectors.clients import ClientPool
from imputehub.connectors.dnastack import DnastackConnector
from imputehub.connectors.michigan import MichiganConnector
from imputehub.connectors.wes import WesConnector
from imputehub.domain.errors import TransientServiceError
from imputehub.runtime import build_runtime
from tests.support.counting_server import Answer, CountingServer, counting_server

TOKEN = "alice-api-token"
POLLS = 30
RUNNING = {"id": "job-1", "state": 2, "steps": []}
DONE = {"id": "job-1", "state": 4, "steps": []}
JOB = ExternalRef(external_id="job-1")
STATUS = "/api/v2/jobs/job-1/status"


@pytest.fixture
def server() -> Iterator[tuple[CountingServer, str]]:
    with counting_server() as started:
        yield started


@pytest.fixture
async def pool() -> AsyncIterator[ClientPool]:
    clients = ClientPool()
    yield clients
    await clients.aclose()


def michigan(base_url: str, **config: object) -> ServiceInfo:
    return ServiceInfo(
        id="svc-mis", slug="mis", api_type="michigan", base_url=base_url, api_config=dict(config)
    )


async def test_many_polls_of_a_service_share_one_connection(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    counting, url = server
    counting.answers[STATUS] = Answer(RUNNING)
    connector = MichiganConnector(clients=pool)
    for _ in range(POLLS):
        status = await connector.poll(michigan(url), JOB, TOKEN)
        assert status.state is ExternalState.RUNNING
    assert counting.accepted == 1
    # Each request still carries the credential: it lives on requests, not on the client.
    assert all(headers.get("X-Auth-Token") == TOKEN for headers in counting.requests)
    assert len(counting.requests) == POLLS


async def test_without_a_pool_each_call_opens_its_own_connection(
    server: tuple[CountingServer, str],
) -> None:
    """The default for a connector built alone: today's behaviour, a client per call."""
    counting, url = server
    counting.answers[STATUS] = Answer(RUNNING)
    connector = MichiganConnector()
    for _ in range(3):
        await connector.poll(michigan(url), JOB, TOKEN)
    assert counting.accepted == 3
    assert counting.wait_closed(3) == 3


async def test_wes_polls_reuse_the_api_and_the_guarded_log_connections(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    """A WES poll reads the run and its log URL (the guarded client): one connection each."""
    counting, url = server
    run = {"run_id": "r1", "state": "RUNNING", "run_log": {"stdout": f"{url}/logs/r1"}}
    counting.answers["/runs/r1"] = Answer(run)
    counting.answers["/logs/r1"] = Answer(b"Imputation: 40%\n")
    service = ServiceInfo(id="svc-wes", slug="wes", api_type="ga4gh_wes", base_url=url)
    connector = WesConnector(clients=pool)
    for _ in range(POLLS):
        status = await connector.poll(service, ExternalRef(external_id="r1"), None)
        assert (status.state, status.logs[-1]) == (ExternalState.RUNNING, "Imputation: 40%")
    assert len(counting.requests) == 2 * POLLS
    assert counting.accepted == 2


async def test_oauth2_tokens_and_health_checks_reuse_connections(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    """DNAstack: the token endpoint and the service-info each keep one connection."""
    counting, url = server
    counting.answers["/token"] = Answer({"access_token": "t0", "expires_in": 0})
    counting.answers["/ns/ga4gh/wes/v1/service-info"] = Answer({"id": "ewes"})
    counting.answers["/ns/ga4gh/wes/v1/runs"] = Answer({"runs": []})
    service = ServiceInfo(
        id="svc-dnastack",
        slug="dnastack",
        api_type="dnastack",
        base_url=url,
        api_config={"namespace": "ns", "token_url": f"{url}/token", "client_id": "hub"},
    )
    connector = DnastackConnector(clients=pool)
    for _ in range(5):
        # expires_in 0: each call asks for a new token, as on a short-lived grant.
        assert await connector.find(service, "no-such-job", "secret") is None
        assert (await connector.check_health(service)).status is HealthStatus.HEALTHY
    token_requests = [
        h for h in counting.requests if h.get("Authorization", "").startswith("Basic")
    ]
    assert len(token_requests) == 5
    # token endpoint, the API (runs), the health client: three clients, three connections.
    assert counting.accepted == 3


async def test_an_edited_base_url_reaches_the_new_server_and_drops_the_old(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    old, old_url = server
    old.answers[STATUS] = Answer(RUNNING)
    connector = MichiganConnector(clients=pool)
    assert (await connector.poll(michigan(old_url), JOB, TOKEN)).state is ExternalState.RUNNING
    with counting_server() as (new, new_url):
        new.answers[STATUS] = Answer(DONE)
        for _ in range(3):
            status = await connector.poll(michigan(new_url), JOB, TOKEN)
            assert status.state is ExternalState.COMPLETED
        assert new.accepted == 1
        assert old.wait_closed(1) == 1  # the replaced client let its connection go
        await pool.aclose()
        assert new.wait_closed(1) == 1
    assert len(old.requests) == 1


async def test_an_edited_api_config_gets_a_fresh_guarded_client(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    """`allow_private_urls` switched on: the next poll follows a log URL it refused before."""
    counting, url = server
    # The log lives on another origin (localhost, not 127.0.0.1): private, so guarded.
    log_url = url.replace("127.0.0.1", "localhost") + "/logs/r1"
    run = {"run_id": "r1", "state": "RUNNING", "run_log": {"stdout": log_url}}
    counting.answers["/runs/r1"] = Answer(run)
    counting.answers["/logs/r1"] = Answer(b"Imputation: 40%\n")
    connector = WesConnector(clients=pool)
    ref = ExternalRef(external_id="r1")

    def service(**config: object) -> ServiceInfo:
        return ServiceInfo(
            id="svc-wes", slug="wes", api_type="ga4gh_wes", base_url=url, api_config=config
        )

    refused = await connector.poll(service(), ref, None)
    assert any("was not fetched" in line for line in refused.logs)
    allowed = await connector.poll(service(allow_private_urls=True), ref, None)
    assert not any("was not fetched" in line for line in allowed.logs)
    assert "Imputation: 40%" in allowed.logs


async def test_closing_the_pool_closes_its_connections(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    counting, url = server
    counting.answers[STATUS] = Answer(RUNNING)
    counting.answers["/api/v2/server"] = Answer({"name": "Michigan"})
    counting.answers["/api/v2/server/counters"] = Answer({"queue": {"size": 4}})
    connector = MichiganConnector(clients=pool)
    await connector.poll(michigan(url), JOB, TOKEN)
    health = await connector.check_health(michigan(url))
    assert (health.status, health.queue_size) == (HealthStatus.HEALTHY, 4)
    assert counting.accepted == 2  # the API client and the health client
    assert counting.closed == 0  # kept alive between calls
    await pool.aclose()
    assert counting.wait_closed(2) == 2
    await pool.aclose()  # twice is harmless (the app's lifespan and the runtime both close)


async def test_the_runtime_shares_one_pool_and_closes_it(
    server: tuple[CountingServer, str], settings: Settings
) -> None:
    counting, url = server
    counting.answers[STATUS] = Answer(RUNNING)
    runtime = build_runtime(settings)
    connector = runtime.connectors["michigan"]
    assert isinstance(connector, MichiganConnector)
    for name in ("ga4gh_wes", "dnastack"):
        other = runtime.connectors[name]
        assert isinstance(other, WesConnector)
        assert other.clients is runtime.clients
    assert connector.clients is runtime.clients
    for _ in range(5):
        await connector.poll(michigan(url), JOB, TOKEN)
    assert counting.accepted == 1
    await runtime.close()
    assert counting.wait_closed(1) == 1


async def test_no_cookie_a_service_sets_goes_with_later_calls(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    """One client serves every user of a service: a session cookie must not travel on."""
    counting, url = server
    counting.answers[STATUS] = Answer(RUNNING, headers={"Set-Cookie": "session=alice; Path=/"})
    connector = MichiganConnector(clients=pool)
    await connector.poll(michigan(url), JOB, "alice-token")
    await connector.poll(michigan(url), JOB, "bob-token")
    assert [h.get("Cookie") for h in counting.requests] == [None, None]
    assert counting.accepted == 1


async def test_an_unreachable_service_is_a_transient_error_as_before(pool: ClientPool) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = MichiganConnector(clients=pool)
    with pytest.raises(TransientServiceError, match=r"^could not reach the service: ConnectError"):
        await connector.poll(michigan(f"http://127.0.0.1:{port}"), JOB, TOKEN)
    wes = WesConnector(clients=pool)
    service = ServiceInfo(
        id="svc-wes", slug="wes", api_type="ga4gh_wes", base_url=f"http://127.0.0.1:{port}"
    )
    with pytest.raises(TransientServiceError, match=r"^could not reach the WES service: Connect"):
        await wes.cancel(service, ExternalRef(external_id="r1"), None)


async def test_a_slow_answer_is_a_transient_error_naming_the_wait(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    counting, url = server
    counting.answers[STATUS] = Answer(RUNNING, delay=1.0)
    connector = MichiganConnector(api_seconds=0.3, clients=pool)
    with pytest.raises(TransientServiceError) as raised:
        await connector.poll(michigan(url), JOB, TOKEN)
    assert raised.value.message == "the service did not answer in time (ReadTimeout after 0.3 s)"
    # The pool is still good: the next call, answered in time, succeeds.
    counting.answers[STATUS] = Answer(RUNNING)
    assert (await connector.poll(michigan(url), JOB, TOKEN)).state is ExternalState.RUNNING


async def test_a_call_under_way_finishes_on_the_client_an_edit_replaced(
    server: tuple[CountingServer, str], pool: ClientPool
) -> None:
    """The replaced client is closed when its last call ends, not under that call."""
    counting, url = server
    gate = threading.Event()
    slow_answer = Answer(RUNNING, gate=gate)
    counting.answers[STATUS] = slow_answer
    counting.answers["/api/v2/jobs/job-2/status"] = Answer(DONE)
    connector = MichiganConnector(clients=pool)
    slow = asyncio.create_task(connector.poll(michigan(url), JOB, TOKEN))
    assert await asyncio.to_thread(slow_answer.arrived.wait, 10)
    # The admin edits the base URL (same server, by another name) while the poll waits.
    moved = michigan(url.replace("127.0.0.1", "localhost"))
    fast = await connector.poll(moved, ExternalRef(external_id="job-2"), TOKEN)
    assert fast.state is ExternalState.COMPLETED
    assert counting.closed == 0
    gate.set()
    assert (await slow).state is ExternalState.RUNNING
    assert counting.wait_closed(1) == 1  # the old client, once its call was done
    assert counting.accepted == 2
