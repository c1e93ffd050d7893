"""The access log: one line per request that says what happened — method, path, status,
duration and request id — in the text and the JSON format an operator chooses, written
when the response has ended (streams included), never with the query string."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from imputehub.logs import log_handler
from tests.support.api import Actor

WAIT = 15.0  # a hang fails the test instead of blocking it
# The text format's access line, after the time stamp.
TEXT_LINE = re.compile(
    r" INFO +imputehub\.api: (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) "
    r"(?P<duration_ms>\d+\.\d)ms request_id=(?P<request_id>\S+)$"
)
# Lines of the test's HTTP client: it runs in this process, but is not the hub.
CLIENT_LINE = re.compile(r'^\S+ \S+ \w+ +(httpx|httpcore)[.:]|"logger": "(httpx|httpcore)[."]')


@dataclass
class Access:
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str


class OperatorLog:
    """What the hub writes to stderr in one format (the handler `imputehub serve` installs)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.stream = io.StringIO()

    def text(self) -> str:
        """The hub's lines; not the test client's own (httpx logs the URLs it requests)."""
        lines = self.stream.getvalue().splitlines(keepends=True)
        return "".join(line for line in lines if not CLIENT_LINE.search(line))

    def accesses(self) -> list[Access]:
        """The access lines, read back the way a person or a log collector reads them."""
        found = []
        for line in self.text().splitlines():
            if self.fmt == "json":
                entry: dict[str, Any] = json.loads(line)
                if entry.get("action") == "http_request":
                    fields = ("method", "path", "status", "duration_ms", "request_id")
                    found.append(Access(**{name: entry[name] for name in fields}))
                    expected = (
                        "{method} {path} {status} {duration_ms:.1f}ms request_id={request_id}"
                    )
                    assert entry["message"] == expected.format(**entry)
                    assert entry["level"] == "info"
            elif match := TEXT_LINE.search(line):
                values = match.groupdict()
                found.append(
                    Access(
                        method=values["method"],
                        path=values["path"],
                        status=int(values["status"]),
                        duration_ms=float(values["duration_ms"]),
                        request_id=values["request_id"],
                    )
                )
        return found

    def only(self, path: str) -> Access:
        lines = [access for access in self.accesses() if access.path == path]
        assert len(lines) == 1, self.text()
        return lines[0]


@pytest.fixture(params=["text", "json"])
def operator_log(request: pytest.FixtureRequest) -> Iterator[OperatorLog]:
    log = OperatorLog(request.param)
    handler = log_handler(request.param, log.stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # every line any library writes, for the secret checks
    try:
        yield log
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_each_request_logs_one_line_that_says_what_happened(
    client: httpx.AsyncClient, alice: Actor, operator_log: OperatorLog
) -> None:
    started = time.monotonic()
    me = await client.get("/api/v1/auth/me", headers=alice.headers)
    elapsed_ms = (time.monotonic() - started) * 1000
    missing = await client.get(
        "/api/v1/jobs/no-such-job", headers={**alice.headers, "X-Request-ID": "req-404-a"}
    )
    login = await client.post("/api/v1/auth/login", json={"username": "alice", "password": "x"})

    assert (me.status_code, missing.status_code, login.status_code) == (200, 404, 401)
    assert [(a.method, a.path, a.status) for a in operator_log.accesses()] == [
        ("GET", "/api/v1/auth/me", 200),
        ("GET", "/api/v1/jobs/no-such-job", 404),
        ("POST", "/api/v1/auth/login", 401),
    ]
    first, second, third = operator_log.accesses()
    assert first.request_id == me.headers["X-Request-ID"]
    assert second.request_id == "req-404-a" == missing.headers["X-Request-ID"]
    assert third.request_id == login.headers["X-Request-ID"]
    assert 0 < first.duration_ms <= elapsed_ms + 0.1


async def test_the_query_string_never_reaches_the_log(
    client: httpx.AsyncClient, alice: Actor, operator_log: OperatorLog
) -> None:
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    # EventSource's way to authenticate: the token in the query (here on an unknown job).
    events = await client.get(f"/api/v1/jobs/no-such-job/events?access_token={token}")
    guessed = await client.get("/api/v1/auth/me?access_token=guessed-secret-Qv71&page=2")

    assert (events.status_code, guessed.status_code) == (404, 401)
    assert operator_log.only("/api/v1/jobs/no-such-job/events").status == 404
    assert operator_log.only("/api/v1/auth/me").status == 401
    logs = operator_log.text()
    assert token not in logs
    assert "guessed-secret-Qv71" not in logs
    assert "access_token=" not in logs
    assert "page=2" not in logs


async def test_a_path_cannot_forge_a_log_line(
    client: httpx.AsyncClient, operator_log: OperatorLog
) -> None:
    forged = "2030-01-01 00:00:00,000 INFO    imputehub.api: GET /admin 200 1.0ms"
    response = await client.get("/api/v1/x%0A" + forged.replace(" ", "%20"))

    assert response.status_code == 404
    access = operator_log.only("/api/v1/x%0A" + forged.replace(" ", "%20"))
    assert access.status == 404
    assert not any(line.startswith("2030-01-01") for line in operator_log.text().splitlines())
    assert [a.path for a in operator_log.accesses()] == [access.path]


async def test_a_stream_is_logged_when_it_ends_with_its_whole_duration(
    hub_url: str, alice: Actor, operator_log: OperatorLog
) -> None:
    held = 0.5
    async with httpx.AsyncClient(base_url=hub_url, timeout=WAIT) as http:
        async with http.stream("GET", "/api/v1/events", headers=alice.headers) as response:
            assert response.status_code == 200
            chunks = response.aiter_bytes()  # kept: a dropped iterator closes the response
            assert (await anext(chunks)).startswith(b"retry:")
            await asyncio.sleep(held)
            # Still streaming: the request has not ended, so it has no line yet.
            assert [a.path for a in operator_log.accesses()] == []
            request_id = response.headers["X-Request-ID"]
        # The client hung up; the hub notices, ends the stream and logs it.
        async with asyncio.timeout(WAIT):
            while not operator_log.accesses():  # noqa: ASYNC110 - polls another's output
                await asyncio.sleep(0.02)

    access = operator_log.only("/api/v1/events")
    assert (access.method, access.status, access.request_id) == ("GET", 200, request_id)
    assert access.duration_ms >= held * 1000
