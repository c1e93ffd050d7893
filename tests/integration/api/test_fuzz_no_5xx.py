"""No request makes the hub answer 5xx, and every answer is one its OpenAPI documents.

Schemathesis reads the hub's own /openapi.json over HTTP and, for every operation in it,
generates requests — valid ones and invalid ones (wrong types, missing fields, values out
of range, odd strings) — and sends them over real HTTP to the app served on loopback,
with its whole middleware stack (request ids, rate limit, body limit). The callers, in
this order: `alice`, a normal user, on every operation; `admin`, on the operations that
refused alice (403: the admin-only ones); and nobody (no credentials), on every operation.
Requests carry generated path parameters (nearly always unknown ids: the 404 paths) and
the ids of things that exist (alice's job, file, upload and token; a service and its
panel), so the code behind the lookups runs too. GETs run first and DELETEs last, so the
things stay there for the other operations.

Every answer must:
- not be a server error (5xx);
- have a status code the operation documents, with a documented content type
  (errors: application/problem+json);
- match the documented schema for that status (the Problem shape for errors).

The number of examples is bounded and generation is derandomized (no random seed, no
example database), so the run is the same every time: about 25 s per database backend on
two cores, most of it the hub answering ~1,000 requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.runtime import Runtime, build_runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.fake_connector import FakeConnector
from tests.support.hub_server import serving

# Requests per operation and caller (valid and invalid ones, with generated and existing
# ids); fewer without credentials, where nearly every answer is 401.
EXAMPLES = 6
ANONYMOUS_EXAMPLES = 3
# A request that takes longer than this is a hang, and fails the test.
REQUEST_TIMEOUT = 15.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Streams that never end for a caller with valid credentials (server-sent events): called
# only without credentials, where they answer 401 at once. Their streaming is tested in
# tests/integration/notify/test_events_stream.py.
STREAMS = re.compile(r"/api/v1/(jobs/\{job_id\}/)?events")
ORDER = {"get": 0, "head": 0, "post": 1, "put": 1, "patch": 1, "delete": 2}


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Runtime]:
    # No rate limits: a fuzzer is a fast client, and its requests must reach the routes.
    # The rate limit's own 429 is tested in tests/integration/monitoring.
    fuzzed = settings.model_copy(update={"rate_limit_login": "0", "rate_limit_api": "0"})
    fake = FakeConnector(tmp_path / "fake.json")
    rt = build_runtime(fuzzed, clock=clock, connectors={"michigan": fake})
    yield rt
    await rt.close()


async def existing_ids(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor
) -> dict[str, dict[str, str]]:
    """Path parameters naming things that exist, per path prefix (longest first)."""
    service = await factories.make_service(runtime, slug="fuzz-service")
    panel = await factories.make_panel(runtime, service, slug="fuzz-panel")
    stored = await factories.make_file(runtime, alice.id)
    job = await factories.make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[stored]
    )
    content = b"fuzz" * 10
    upload = await client.post(
        "/api/v1/uploads/init",
        headers=alice.headers,
        json={"filename": "x.vcf.gz", "size": len(content), "sha256": _sha256(content)},
    )
    assert upload.status_code == 201, upload.text
    token = await client.post("/api/v1/auth/tokens", headers=alice.headers, json={"name": "fz"})
    assert token.status_code == 201, token.text
    common = {
        "job_id": job.id,
        "file_id": stored.id,
        "upload_id": upload.json()["upload_id"],
        "token_id": token.json()["id"],
        "user_id": alice.id,
        "index": "0",
        "filename": stored.filename,
    }
    return {
        "/api/v1/services/": {**common, "ref": service.slug},
        "/api/v1/reference-panels/": {**common, "ref": panel.slug},
        "": common,
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pinned_for(path: str, ids: dict[str, dict[str, str]], names: set[str]) -> dict[str, str]:
    for prefix, values in ids.items():
        if path.startswith(prefix):
            return {name: value for name, value in values.items() if name in names}
    return {}


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    examples: int  # per operation
    # Which operations it calls, given the statuses the callers before it were answered.
    wants: Callable[[set[int]], bool] = lambda _: True


def fuzz(
    base_url: str, callers: list[Caller], ids: dict[str, dict[str, str]]
) -> tuple[set[str], list[str]]:
    """Every operation, as every caller: the operations called, and the failures."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: ORDER.get(op.method.lower(), 1))
    called: set[str] = set()
    answered: dict[str, set[int]] = {}  # statuses seen per operation, by any caller
    failures: list[str] = []
    with requests.Session() as session:
        for caller in callers:
            for operation in operations:
                label = f"{operation.method.upper()} {operation.path}"
                statuses = answered.setdefault(label, set())
                if caller.headers and STREAMS.fullmatch(operation.path):
                    continue
                if not caller.wants(statuses):
                    continue
                called.add(label)
                strategy = strategy_for(operation, ids, public=not caller.headers)
                try:
                    _run(strategy, caller, base_url, session, statuses)
                except (Exception, FailureGroup) as exc:  # reported below, all at once
                    failures.append(f"{caller.name} {label}:\n{exc}")
    return called, failures


def strategy_for(operation: Any, ids: dict[str, dict[str, str]], *, public: bool) -> Any:
    """Valid and invalid requests, with generated ids and with the ids of things that exist.

    Without credentials, existing ids matter only on the public routes: the others answer
    401 before they look anything up.
    """
    inputs = (operation.path_parameters, operation.query, operation.headers, operation.body)
    # An operation that takes no input has no invalid request.
    modes = [GenerationMode.POSITIVE]
    if any(len(group) for group in inputs):
        modes.append(GenerationMode.NEGATIVE)
    variants: list[dict[str, str] | None] = [None]
    names = {parameter.name for parameter in operation.path_parameters}
    if names and (not public or not operation.definition.raw.get("security")):
        variants.append(pinned_for(operation.path, ids, names))
    return st.one_of(
        [
            operation.as_strategy(generation_mode=mode, path_parameters=pinned)
            for pinned in variants
            for mode in modes
        ]
    )


def _run(
    strategy: Any,
    caller: Caller,
    base_url: str,
    session: requests.Session,
    statuses: set[int],
) -> None:
    @hypothesis.settings(
        max_examples=caller.examples,
        derandomize=True,  # the same examples every run
        database=None,  # no .hypothesis/ folder
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = case.call(
            base_url=base_url,
            session=session,
            # A new connection per request: on a kept-alive one each request waits ~40 ms
            # on loopback (delayed ACKs), which would make the run ten times slower.
            headers={**caller.headers, "Connection": "close"},
            timeout=REQUEST_TIMEOUT,
        )
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=caller.headers)

    check()


async def test_no_request_makes_a_server_error(
    app: FastAPI,
    runtime: Runtime,
    client: httpx.AsyncClient,
    alice: Actor,
    admin: Actor,
) -> None:
    ids = await existing_ids(runtime, client, alice)
    callers = [
        Caller("alice", alice.headers, EXAMPLES),
        # An admin: on the operations that refused alice (403), the admin-only ones.
        Caller("admin", admin.headers, EXAMPLES, wants=lambda statuses: 403 in statuses),
        # Nobody: no credentials, a few requests per operation (nearly all answer 401).
        Caller("nobody", {}, ANONYMOUS_EXAMPLES),
    ]
    async with serving(app) as url:
        called, failures = await asyncio.to_thread(fuzz, url, callers, ids)

    documented = {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method in item
    }
    assert called == documented  # every operation was called
    assert not failures, "\n\n".join(failures)
