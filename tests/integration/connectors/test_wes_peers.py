"""The hub against a second real WES server, wes-service 5.0 (tests/support/wes_service.py),
to prove tolerance of its quirks: runs listed as "workflows" without their tags, outputs
that are `file://` paths only, and a cancel that does nothing at the server.

The workflow is tests/peers/wes_service/copy.cwl (seconds, not a whole imputation): the hub
names it by `workflow_url` and maps only `inputs` into its parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.connectors.base import ServiceInfo
from imputehub.connectors.wes import WesConnector
from imputehub.connectors.wes.connector import TAG
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from tests.integration.connectors.test_wes import follow
from tests.integration.worker.support import request_cancel, status_updates
from tests.support.wes_jobs import wes_hub_job
from tests.support.wes_service import COPY_CWL, WesService, run_wes_service

ONLY_INPUTS = {"panel": None, "mode": None, "r2_filter": None}


@pytest.fixture(scope="module")
def wes_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WesService]:
    yield from run_wes_service(tmp_path_factory.mktemp("wes-service"))


def config(**extra: Any) -> dict[str, Any]:
    return {"workflow_url": COPY_CWL.as_uri(), "params": ONLY_INPUTS, **extra}


def run_of(server: WesService, run_id: str) -> dict[str, Any]:
    body = httpx.get(f"{server.base_url}/runs/{run_id}", timeout=10.0).json()
    assert isinstance(body, dict)
    return body


async def test_a_run_with_file_outputs_is_followed_and_fails_plainly_and_found_by_tag(
    runtime: Runtime, clock: FakeClock, wes_service: WesService, tmp_path: Path
) -> None:
    job = await wes_hub_job(runtime, wes_service.base_url, **config())

    done = await follow(runtime, clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "which the hub cannot download" in done.error_message
    assert "file:///" in done.error_message
    assert done.external_job_id is not None
    run = run_of(wes_service, done.external_job_id)
    assert run["state"] == "COMPLETE"
    assert run["request"]["tags"] == {TAG: job.id}
    said = [u.message or "" for u in await status_updates(runtime, job.id)]
    assert any(m.startswith("running at") for m in said), said
    # Its listing says "workflows" and carries no tags: find reads each run's own RunLog.
    service = ServiceInfo(
        id="s", slug="w", api_type="ga4gh_wes", base_url=wes_service.base_url, api_config={}
    )
    found = await WesConnector().find(service, job.id, None)
    assert found is not None
    assert found.external_id == done.external_job_id
    assert await WesConnector().find(service, "a-job-never-submitted", None) is None


async def test_cancel_at_a_server_whose_cancel_does_nothing_still_cancels_the_job(
    runtime: Runtime, clock: FakeClock, wes_service: WesService
) -> None:
    job = await wes_hub_job(runtime, wes_service.base_url, **config(extra_params={"sleep": 120}))
    running = await follow(runtime, clock, job.id, until=frozenset({JobStatus.RUNNING}))
    assert running.external_job_id is not None
    await request_cancel(runtime, job.id)

    done = await follow(runtime, clock, job.id)

    assert done.status == "cancelled"
    # wes-service's cancel is a no-op: its run goes on (the server is stopped after the tests).
    assert run_of(wes_service, running.external_job_id)["state"] == "RUNNING"
