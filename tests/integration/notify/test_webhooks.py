"""The webhooks API: registration shows the signing secret once, keeps it vaulted, and
refuses what could turn the hub against its own network (SSRF) or be abused in bulk."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.config import Settings
from imputehub.db.models import Webhook
from imputehub.notify import webhooks
from imputehub.outbound.addresses import is_public_address
from imputehub.runtime import Runtime
from tests.support.api import Actor

PUBLIC = "https://93.184.215.14/imputehub/hook"  # a public address: no DNS needed


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The per-client API rate limit would answer the 1000-registration flood before the
    # webhook limit does; this module tests the latter.
    return settings.model_copy(update={"rate_limit_api": "100000/minute"})


async def test_registering_shows_the_secret_once_and_stores_it_encrypted(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    created = await client.post(
        "/api/v1/webhooks",
        json={"url": PUBLIC, "description": "lab pipeline", "event_kinds": ["job.failed"]},
        headers=alice.headers,
    )

    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 30
    assert body["url"] == PUBLIC
    assert body["event_kinds"] == ["job.failed"]
    assert body["is_active"] is True
    listed = await client.get("/api/v1/webhooks", headers=alice.headers)
    one = await client.get(f"/api/v1/webhooks/{body['id']}", headers=alice.headers)
    assert [h["id"] for h in listed.json()] == [body["id"]]
    for shown in (listed.text, one.text):
        assert secret not in shown
        assert "secret" not in shown
    assert one.json()["description"] == "lab pipeline"
    async with runtime.db.session() as session:
        row = await session.get(Webhook, body["id"])
    assert row is not None
    assert secret not in row.secret_encrypted
    assert runtime.vault.decrypt(row.secret_encrypted) == secret


async def test_a_deleted_webhook_is_gone(client: httpx.AsyncClient, alice: Actor) -> None:
    created = await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=alice.headers)
    hook_id = created.json()["id"]

    deleted = await client.delete(f"/api/v1/webhooks/{hook_id}", headers=alice.headers)

    assert deleted.status_code == 204
    assert (
        await client.get(f"/api/v1/webhooks/{hook_id}", headers=alice.headers)
    ).status_code == 404
    assert (await client.get("/api/v1/webhooks", headers=alice.headers)).json() == []


async def test_other_users_webhooks_are_unknown_and_a_token_is_needed(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    created = await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=alice.headers)
    hook_id = created.json()["id"]

    assert (await client.get(f"/api/v1/webhooks/{hook_id}", headers=bob.headers)).status_code == 404
    assert (
        await client.delete(f"/api/v1/webhooks/{hook_id}", headers=bob.headers)
    ).status_code == 404
    assert (await client.get("/api/v1/webhooks", headers=bob.headers)).json() == []
    assert (await client.get("/api/v1/webhooks")).status_code == 401
    assert (await client.post("/api/v1/webhooks", json={"url": PUBLIC})).status_code == 401
    assert (await client.delete(f"/api/v1/webhooks/{hook_id}")).status_code == 401
    still = await client.get(f"/api/v1/webhooks/{hook_id}", headers=alice.headers)
    assert still.status_code == 200


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://93.184.215.14/hook", "https://"),
        ("https://user:pass@93.184.215.14/hook", "user name or password"),
        ("https://127.0.0.1/hook", "non-public"),
        ("https://127.1.2.3:8443/hook", "non-public"),
        ("https://localhost/hook", "non-public"),
        ("https://2130706433/hook", "non-public"),  # 127.0.0.1 as one number
        ("https://0x7f000001/hook", "non-public"),
        ("https://127.1/hook", "non-public"),
        ("https://10.1.2.3/hook", "non-public"),
        ("https://172.16.0.1/hook", "non-public"),
        ("https://192.168.1.1/hook", "non-public"),
        ("https://100.64.0.1/hook", "non-public"),  # carrier-grade NAT
        ("https://169.254.169.254/latest/meta-data", "non-public"),  # cloud metadata
        ("https://0.0.0.0/hook", "non-public"),
        ("https://224.0.0.1/hook", "non-public"),
        ("https://240.0.0.1/hook", "non-public"),
        ("https://[::1]/hook", "non-public"),
        ("https://[::]/hook", "non-public"),
        ("https://[fe80::1]/hook", "non-public"),
        ("https://[fc00::1]/hook", "non-public"),
        ("https://[ff02::1]/hook", "non-public"),
        ("https://[::ffff:127.0.0.1]/hook", "non-public"),  # IPv4-mapped loopback
        ("https://[::ffff:169.254.169.254]/hook", "non-public"),
        ("https://[2002:a9fe:a9fe::1]/hook", "non-public"),  # 6to4 of 169.254.169.254
        ("ftp://93.184.215.14/hook", "https://"),
        ("https:///hook", "host"),
        ("not a url at all", "https://"),
        ("https://no-such-host.invalid/hook", "cannot be resolved"),
    ],
)
async def test_hostile_or_private_urls_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, url: str, says: str
) -> None:
    answer = await client.post("/api/v1/webhooks", json={"url": url}, headers=alice.headers)

    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert says in problem["detail"]
    assert "pass" not in problem["detail"].replace("password", "")  # no credential echoed
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Webhook)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 42},
        {"url": PUBLIC, "event_kinds": ["job.exploded"]},
        {"url": PUBLIC, "event_kinds": "job.failed"},
        {"url": PUBLIC, "unexpected": True},
        {"url": "https://93.184.215.14/" + "a" * webhooks.MAX_URL_LENGTH},
        {"url": PUBLIC, "description": "d" * 201},
        [PUBLIC],
    ],
)
async def test_malformed_or_oversized_registrations_are_refused(
    client: httpx.AsyncClient, alice: Actor, body: object
) -> None:
    answer = await client.post("/api/v1/webhooks", json=body, headers=alice.headers)

    assert answer.status_code == 422, answer.text
    assert (await client.get("/api/v1/webhooks", headers=alice.headers)).json() == []


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient, alice: Actor) -> None:
    answer = await client.post(
        "/api/v1/webhooks",
        content=b"\xff\xfe not json",
        headers={**alice.headers, "Content-Type": "application/json"},
    )

    assert answer.status_code in (400, 422), answer.text
    assert (await client.get("/api/v1/webhooks", headers=alice.headers)).json() == []


async def test_a_thousand_registrations_at_once_stop_at_the_limit(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    async def register(n: int) -> int:
        answer = await client.post(
            "/api/v1/webhooks",
            json={"url": f"{PUBLIC}/{n}"},
            headers=alice.headers,
        )
        return answer.status_code

    codes: list[int] = []
    for start in range(0, 1000, 50):
        codes += await asyncio.gather(*(register(n) for n in range(start, start + 50)))

    assert codes.count(201) == webhooks.MAX_WEBHOOKS_PER_USER
    assert codes.count(429) == 1000 - webhooks.MAX_WEBHOOKS_PER_USER
    listed = (await client.get("/api/v1/webhooks", headers=alice.headers)).json()
    assert len(listed) == webhooks.MAX_WEBHOOKS_PER_USER
    # The limit is per user: Bob is not affected by Alice's flood.
    assert (
        await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=bob.headers)
    ).status_code == 201


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("192.0.2.1", False),  # documentation
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:0a00:0001::1", False),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo of 10.0.0.1
    ],
)
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_a_signature_verifies_with_the_secret_and_a_recent_timestamp() -> None:
    body = b'{"id":"1","type":"job.failed"}'
    header = webhooks.signature("whsec_abc", body, 1_700_000_000)

    assert header.startswith("t=1700000000,v1=")
    assert webhooks.verify_signature("whsec_abc", header, body, now=1_700_000_100)
    assert not webhooks.verify_signature("whsec_abc", header, body + b" ", now=1_700_000_100)
    assert not webhooks.verify_signature("whsec_other", header, body, now=1_700_000_100)
    assert not webhooks.verify_signature("whsec_abc", header, body, now=1_700_003_600)
    assert not webhooks.verify_signature("whsec_abc", "garbage", body, now=1_700_000_000)
    # A forged header need not be ASCII: still a plain "no", never an error.
    forged = "t=1700000000,v1=" + "é" * 64
    assert not webhooks.verify_signature("whsec_abc", forged, body, now=1_700_000_100)


async def test_registering_and_deleting_a_webhook_is_in_the_audit_log(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    secret_path = "https://93.184.215.14/services/T0/B0/xoxb-secret-path"
    created = await client.post(
        "/api/v1/webhooks", json={"url": secret_path}, headers=alice.headers
    )
    hook_id = created.json()["id"]
    await client.delete(f"/api/v1/webhooks/{hook_id}", headers=alice.headers)

    log = await client.get(
        "/api/v1/admin/audit-log", params={"target": f"webhook:{hook_id}"}, headers=admin.headers
    )

    assert log.status_code == 200, log.text
    entries = log.json()["items"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("webhook_deleted", "alice"),
        ("webhook_created", "alice"),
    ]
    assert "xoxb-secret-path" not in log.text  # a webhook's path may be a secret: host only
