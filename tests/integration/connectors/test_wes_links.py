"""A WES server that takes no attachments gets the inputs as signed links to the hub.

sapporo is told `inputs_as: url`: the submission carries only the workflow, and cwltool at
the server downloads each input over real HTTP from the hub's link endpoint, served here on
loopback at the hub's IMPUTEHUB_PUBLIC_URL. The imputation must come out as good as with
attachments, and the links must die with the job.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.engine.accuracy import dosage_r2
from imputehub.engine.demo import DemoPanel
from imputehub.runtime import Runtime, build_runtime
from tests.integration.connectors.test_wes import follow, run_of, wes_job
from tests.integration.worker.support import result_files, stored_bytes
from tests.support.hub_server import serving, url_of
from tests.support.sapporo import Sapporo, sapporo_fixture  # noqa: F401 - session fixture


@pytest.fixture
async def public_hub(
    settings: Settings, clock: FakeClock, hub_socket: socket.socket
) -> AsyncIterator[Runtime]:
    runtime = build_runtime(
        settings.model_copy(update={"public_url": url_of(hub_socket)}), clock=clock
    )
    async with serving(create_app(runtime), hub_socket):
        yield runtime
    await runtime.close()


async def test_inputs_travel_as_signed_links_and_the_server_imputes_from_them(
    public_hub: Runtime, clock: FakeClock, sapporo: Sapporo, demo: DemoPanel, tmp_path: Path
) -> None:
    job = await wes_job(public_hub, sapporo, demo, demo.targets.read_bytes(), inputs_as="url")

    done = await follow(public_hub, clock, job.id)

    assert done.status == "completed", done.error_log
    assert done.external_job_id is not None
    run = run_of(sapporo, done.external_job_id)
    (given,) = run["request"]["workflow_params"]["inputs"]
    assert given["location"].startswith(f"{public_hub.settings.public_url}/api/v1/links/{job.id}/")
    # Nothing but the workflow travelled with the submission.
    attached = list((sapporo.run_path(done.external_job_id) / "exe").rglob("*.vcf.gz"))
    assert attached == []
    files = {f.filename: f for f in await result_files(public_hub, job.id)}
    dose = tmp_path / "chr20.dose.vcf.gz"
    dose.write_bytes(await stored_bytes(public_hub, files["chr20.dose.vcf.gz"].storage_key))
    assert dosage_r2(dose, demo.truth) >= 0.85
    # The job is over: its links no longer serve the input.
    async with httpx.AsyncClient() as client:
        assert (await client.get(given["location"])).status_code == 410


async def test_a_hub_without_a_public_address_says_so_instead_of_submitting(
    runtime: Runtime, clock: FakeClock, sapporo: Sapporo, demo: DemoPanel
) -> None:
    job = await wes_job(runtime, sapporo, demo, demo.targets.read_bytes(), inputs_as="url")

    done = await follow(runtime, clock, job.id)

    assert done.status == "failed"
    assert "IMPUTEHUB_PUBLIC_URL" in (done.error_message or "")
    assert done.external_job_id is None
