"""The command line's part sender against the real app: parallel parts, retries, refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from imputehub.cli.client import HubError
from imputehub.cli.transfer import PartPlan, PartSender
from tests.integration.api.upload_helpers import complete, sha256, started, vcf
from tests.support.api import Actor

HUB = "http://hub.test"


def token(actor: Actor) -> str:
    return actor.headers["Authorization"].removeprefix("Bearer ")


class FlakyParts:
    """In front of the app: the first try at each part answers 503, as a busy proxy might."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.refused: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and "/part/" in path and path not in self.refused:
            self.refused.append(path)
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        await self.app(scope, receive, send)


async def send_file(
    app: object, actor: Actor, plan: PartPlan, indexes: list[int], progress: list[int]
) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with PartSender(
        HUB, token(actor), parallel=3, retry_delay=0.001, transport=transport
    ) as sender:
        await sender.send(plan, indexes, progress.append)


async def test_parts_go_in_parallel_and_make_the_file(
    app: FastAPI, client: httpx.AsyncClient, alice: Actor, tmp_path: Path
) -> None:
    content = vcf()
    path = tmp_path / "study.vcf.gz"
    path.write_bytes(content)
    body = await started(client, alice, content)
    plan = PartPlan(
        upload_id=body["upload_id"], path=path, size=len(content), part_size=body["part_size"]
    )
    progress: list[int] = []
    await send_file(app, alice, plan, list(range(body["part_count"])), progress)
    assert sum(progress) == len(content)
    response = await complete(client, alice, body["upload_id"])
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha256(content)


async def test_busy_answers_are_retried_and_not_counted_twice(
    app: FastAPI, client: httpx.AsyncClient, alice: Actor, tmp_path: Path
) -> None:
    content = vcf()
    path = tmp_path / "study.vcf.gz"
    path.write_bytes(content)
    body = await started(client, alice, content)
    plan = PartPlan(
        upload_id=body["upload_id"], path=path, size=len(content), part_size=body["part_size"]
    )
    flaky = FlakyParts(app)
    progress: list[int] = []
    await send_file(flaky, alice, plan, list(range(body["part_count"])), progress)
    assert len(flaky.refused) == body["part_count"]
    assert sum(progress) == len(content)
    state = await client.get(f"/api/v1/uploads/{body['upload_id']}", headers=alice.headers)
    assert state.json()["missing"] == []


async def test_a_refusal_stops_the_transfer_with_the_hubs_message(
    app: FastAPI, client: httpx.AsyncClient, alice: Actor, tmp_path: Path
) -> None:
    content = vcf()
    path = tmp_path / "study.vcf.gz"
    path.write_bytes(content)
    body = await started(client, alice, content)
    # Parts twice the size the hub planned: it answers 413, which is not worth retrying.
    plan = PartPlan(
        upload_id=body["upload_id"], path=path, size=len(content), part_size=2 * body["part_size"]
    )
    with pytest.raises(ExceptionGroup) as caught:
        await send_file(app, alice, plan, [0], [])
    (error,) = caught.value.exceptions
    assert isinstance(error, HubError)
    assert (error.status, error.code) == (413, "payload_too_large")
    assert f"more than the {body['part_size']} bytes it must have" in error.message
