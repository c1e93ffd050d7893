"""The federated job's headline case, end to end with real connectors: one upload sent to two
Michigan servers (emulated, each with another panel, imputing what it was sent) and to the
local engine (a real Beagle run on a small simulated panel).

The user sees the job complete with "3 of 3 completed"; each server received exactly one
submission, made with the right credential (the user's own at one server, the platform's at
the other); the job's results hold the comparison and the merged dose VCF, which bcftools
reads and whose sites come from every target (each is the best somewhere).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.engine.demo import DemoPanel, simulate_demo_panel
from imputehub.engine.tools import check_tools
from imputehub.federation.comparison_report import read_sections
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.engine.local_support import drive, install_panel, local_hub, local_service
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import PANELS, MichiganEmulator, running_emulator

BCFTOOLS = "/usr/bin/bcftools"
OWN_TOKEN = "alices-own-michigan-token"  # alice's own account at the first server


@dataclass(frozen=True, kw_only=True)
class Server:
    """One emulated Michigan server as the hub knows it."""

    emulator: MichiganEmulator
    slug: str
    panel_id: str  # the server's id of the panel the job uses
    platform_token: str
    platform_user: str  # whose account the platform token is


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    tools = check_tools()
    assert tools.healthy, tools.message  # `make test` installs them; missing fails


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPanel:
    # Small: Beagle runs in about a second, yet the targets keep a few dozen array sites.
    return simulate_demo_panel(
        tmp_path_factory.mktemp("demo"), panel_samples=100, target_samples=20, length=300_000
    )


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock, demo: DemoPanel) -> AsyncIterator[Runtime]:
    """The hub (its app and client too) with every real connector, the local engine's panel
    installed."""
    async with local_hub(settings, clock, parent_follow_seconds=1.0) as hub:
        install_panel(hub.settings.resolved_engine_dir, demo)
        yield hub


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    chosen = [
        ("michigan", "apps@hapmap-2@2.0.0", "platform-token-michigan", "hub-michigan"),
        ("michigan-eu", "apps@1000g-phase-3-v5@2.0.0", "platform-token-eu", "hub-eu"),
    ]
    with (
        running_emulator(tmp_path / "michigan", impute_uploads=True) as first,
        running_emulator(tmp_path / "michigan-eu", impute_uploads=True) as second,
    ):
        made = []
        for emulator, (slug, panel_id, token, user) in zip((first, second), chosen, strict=True):
            emulator.add_token(token, username=user)
            made.append(
                Server(
                    emulator=emulator,
                    slug=slug,
                    panel_id=panel_id,
                    platform_token=token,
                    platform_user=user,
                )
            )
        first.add_token(OWN_TOKEN, username="alice")
        yield made


async def register(runtime: Runtime, alice: Actor, servers: list[Server]) -> list[dict[str, Any]]:
    """The three services and panels as an administrator registers them; alice's own
    credential for the first server. Returns the job's targets."""
    targets: list[dict[str, Any]] = []
    for server in servers:
        service = await factories.make_service(
            runtime,
            slug=server.slug,
            api_type="michigan",
            base_url=server.emulator.base_url,
            credential_encrypted=runtime.vault.encrypt(server.platform_token),
            supported_builds=["hg19"],
        )
        name, populations = PANELS[server.panel_id]
        panel = await factories.make_panel(
            runtime,
            service,
            slug=server.panel_id.split("@")[1],
            panel_id=server.panel_id,
            display_name=name,
            populations=populations,
        )
        targets.append(
            {"service_id": service.slug, "reference_panel_id": panel.slug, "population": "eur"}
        )
        if server is servers[0]:
            await factories.make_user_credential(runtime, alice.id, service, OWN_TOKEN)
    service, panel = await local_service(runtime)
    targets.append(
        {
            "service_id": service.slug,
            "reference_panel_id": panel.slug,
            "population": "DEMO",
            "phasing": "beagle",
        }
    )
    return targets


async def download(client: httpx.AsyncClient, alice: Actor, url: str, path: Path) -> Path:
    """A result file as the user downloads it, written to `path` chunk by chunk."""
    async with client.stream("GET", url, headers=alice.headers) as response:
        assert response.status_code == 200, await response.aread()
        with path.open("wb") as out:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
    return path


def bcftools(*args: str, out: Path) -> Path:
    """Run bcftools (the system's, as users would) with its output to `out`."""
    with out.open("wb") as stdout:
        subprocess.run([BCFTOOLS, *args], check=True, stdout=stdout)
    return out


def lines(path: Path) -> Iterator[str]:
    with path.open() as handle:
        for line in handle:
            yield line.rstrip("\n")


async def test_three_targets_complete_each_submitted_once_with_its_own_credential(
    runtime: Runtime,
    clock: FakeClock,
    client: httpx.AsyncClient,
    alice: Actor,
    servers: list[Server],
    demo: DemoPanel,
    tmp_path: Path,
) -> None:
    targets = await register(runtime, alice, servers)
    upload = await factories.make_file(
        runtime, alice.id, demo.targets.read_bytes(), filename="study.chr20.vcf.gz"
    )
    created = await client.post(
        "/api/v1/jobs",
        json={
            "name": "cohort A",
            "build": "hg19",
            "phasing": "eagle",
            "mode": "imputation",
            "input_file_ids": [upload.id],
            "targets": targets,
        },
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    parent_id = created.json()["id"]

    await drive(runtime, Worker(runtime), clock, parent_id, within=180.0)

    shown = (await client.get(f"/api/v1/jobs/{parent_id}", headers=alice.headers)).json()
    assert shown["status"] == "completed", shown
    assert shown["summary"] == "3 of 3 completed"
    # Both servers' children and the local engine's, each completed once (no retries).
    assert [child["status"] for child in shown["children"]] == ["completed"] * 3, shown
    assert [child["replaced"] for child in shown["children"]] == [False] * 3

    # Each server got the upload once, from the account the hub had to use there.
    own, platform = servers
    [first] = own.emulator.accepted()
    [second] = platform.emulator.accepted()
    assert first["user"] == "alice"  # alice's own credential, not the platform's
    assert second["user"] == platform.platform_user  # alice has none there
    assert own.emulator.submit_posts() == platform.emulator.submit_posts() == 1
    assert first["fields"]["refpanel"] == [own.panel_id]
    assert second["fields"]["refpanel"] == [platform.panel_id]
    assert [f["size"] for f in first["files"]] == [demo.targets.stat().st_size]

    listed = await client.get(f"/api/v1/jobs/{parent_id}/results", headers=alice.headers)
    results = {item["filename"]: item for item in listed.json()}
    assert {
        "comparison.html",
        "comparison.tsv",
        "chr20.merged.dose.vcf.gz",
        "chr20.merged.dose.vcf.gz.tbi",
    } <= set(results)

    merged = tmp_path / "chr20.merged.dose.vcf.gz"
    await download(client, alice, results["chr20.merged.dose.vcf.gz"]["download_url"], merged)
    index = results["chr20.merged.dose.vcf.gz.tbi"]["download_url"]
    await download(client, alice, index, Path(f"{merged}.tbi"))
    body = bcftools("view", "-H", str(merged), out=tmp_path / "records.txt")
    sources = bcftools("query", "-f", "%INFO/SRC\n", str(merged), out=tmp_path / "src.txt")
    assert sum(1 for _ in lines(body)) > 0
    uploaded = bcftools("query", "-l", str(demo.targets), out=tmp_path / "uploaded.txt")
    samples = bcftools("query", "-l", str(merged), out=tmp_path / "samples.txt")
    assert list(lines(samples)) == list(lines(uploaded))  # the servers imputed the upload
    # Each target is the best somewhere: the engine where it alone imputes or typed the
    # upload (r² 1), each server where only the servers impute and its panel does better.
    assert set(lines(sources)) == {"t1", "t2", "t3"}

    tsv = await download(
        client, alice, results["comparison.tsv"]["download_url"], tmp_path / "comparison.tsv"
    )
    compared = read_sections(tsv)["children"]
    assert [row["key"] for row in compared] == ["t1", "t2", "t3"]
    panels = [PANELS[s.panel_id][0] for s in servers] + ["Panel demo"]
    assert [panel in row["label"] for row, panel in zip(compared, panels, strict=True)] == [
        True
    ] * 3
