"""Structured logs: each request's id is echoed and on every line it logs, each worker
step's lines carry the job id, and no secret reaches the logs along the way."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.logs import ContextFilter, JsonFormatter
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.conftest import TEST_SECRET
from tests.integration.worker.support import CREDENTIAL, drive, new_job
from tests.support import vcf
from tests.support.api import PASSWORD, Actor
from tests.support.fake_connector import FakeConnector


class Captured:
    """Every log line (any logger, DEBUG and up) as the JSON an operator would collect."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Our own lines: a library logging from its own thread (aiosqlite's DEBUG lines)
        is outside any request's or job's context."""
        parsed = [json.loads(line) for line in self.text().splitlines() if line.strip()]
        return [line for line in parsed if line["logger"].startswith("imputehub")]

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_the_request_id_is_echoed_and_on_every_line_of_the_request(
    client: httpx.AsyncClient, alice: Actor, captured: Captured
) -> None:
    captured.clear()
    content = vcf.make_vcf()
    response = await client.post(
        "/api/v1/files",
        files={"file": ("in.vcf.gz", content, "application/gzip")},
        headers={**alice.headers, "X-Request-ID": "upload-req-42"},
    )

    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == "upload-req-42"
    lines = captured.lines()
    actions = [line.get("action") for line in lines]
    assert {"file_uploaded", "http_request"} <= set(actions), actions
    assert all(line.get("request_id") == "upload-req-42" for line in lines), lines
    request_line = next(line for line in lines if line.get("action") == "http_request")
    assert (request_line["method"], request_line["path"], request_line["status"]) == (
        "POST",
        "/api/v1/files",
        201,
    )


async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(
    client: httpx.AsyncClient, alice: Actor, captured: Captured
) -> None:
    ids = []
    for header in ({}, {"X-Request-ID": "bad id\twith spaces"}, {"X-Request-ID": "x" * 65}):
        captured.clear()
        response = await client.get("/api/v1/auth/me", headers={**alice.headers, **header})
        assert response.status_code == 200
        request_id = response.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert [line["request_id"] for line in captured.lines()] == [request_id]
        ids.append(request_id)
    assert len(set(ids)) == 3


async def test_every_line_of_a_worker_step_carries_the_job_id(
    runtime: Runtime, clock: FakeClock, alice: Actor, tmp_path: Path, captured: Captured
) -> None:
    runtime.connectors = {"michigan": FakeConnector(tmp_path / "fake.json")}
    job = await new_job(runtime, alice.id)
    captured.clear()

    assert (await drive(runtime, Worker(runtime), clock, job.id)).status == "completed"

    lines = captured.lines()
    assert {"job_submitted", "job_completed"} <= {line.get("action") for line in lines}
    assert all(line.get("job_id") == job.id for line in lines), [
        line for line in lines if line.get("job_id") != job.id
    ]


async def test_no_secret_reaches_the_logs(
    runtime: Runtime,
    admin: Actor,
    alice: Actor,
    clock: FakeClock,
    tmp_path: Path,
    captured: Captured,
) -> None:
    fake = FakeConnector(tmp_path / "fake.json")
    runtime.connectors = {"michigan": fake}
    app = create_app(runtime)
    service_secret = "service-platform-credential-Zq81"
    user_secret = "alice-personal-credential-Pw33"
    wrong_password = "wrong-password-Kd90"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        login = "/api/v1/auth/login"
        bad = await client.post(login, json={"username": "alice", "password": wrong_password})
        assert bad.status_code == 401
        good = await client.post(login, json={"username": "alice", "password": PASSWORD})
        assert good.status_code == 200
        access = good.json()["access_token"]
        bearer = {"Authorization": f"Bearer {access}"}
        token = await client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=bearer)
        api_token = token.json()["token"]
        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {api_token}"})
        assert me.status_code == 200
        service = await client.post(
            "/api/v1/services",
            json={
                "name": "Michigan",
                "slug": "michigan-logs",
                "api_type": "michigan",
                "base_url": "https://imputationserver.sph.umich.edu",
                "credential": service_secret,
            },
            headers=admin.headers,
        )
        assert service.status_code == 201, service.text
        put = await client.put(
            f"/api/v1/services/{service.json()['id']}/credential",
            json={"credential": user_secret},
            headers=bearer,
        )
        assert put.status_code == 200, put.text
        # A job through the worker, on a service holding a platform credential.
        job = await new_job(runtime, alice.id)
        assert (await drive(runtime, Worker(runtime), clock, job.id)).status == "completed"
        assert fake.calls("submit")  # the connector was really handed the credential
        # EventSource's way in: the token in the query string (the job has ended, so the
        # stream ends). Sent through the transport: the client would log the URL itself.
        url = f"http://hub.test/api/v1/jobs/{job.id}/events?access_token={access}"
        events = await transport.handle_async_request(httpx.Request("GET", url))
        assert events.status_code == 200
        assert b"event: job.completed" in await events.aread()

    logs = captured.text()
    assert "http_request" in logs
    assert job.id in logs
    for secret in (
        PASSWORD,
        wrong_password,
        access,
        api_token,
        service_secret,
        user_secret,
        CREDENTIAL,
        TEST_SECRET,
        admin.headers["Authorization"].removeprefix("Bearer "),
    ):
        assert secret not in logs
