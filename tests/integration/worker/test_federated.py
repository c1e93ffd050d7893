"""A federated job through the worker: its children run at their services, the parent
follows them (through a failure, a retry and a cancel), then compares and merges results.

The services are the fake connector (one "service" per registered service row); each
child's results are small dose VCFs whose estimated r² the test chooses, so which child
the merge takes at each site is known.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, ReferencePanel, Service, User
from imputehub.domain.jobs import JobStatus
from imputehub.jobs import actions, federated
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.conftest import make_hub
from tests.integration.worker.support import (
    CREDENTIAL,
    drive,
    load_job,
    result_files,
    status_updates,
    stored_bytes,
)
from tests.support import factories
from tests.support.fake_connector import FakeConnector
from tests.support.vcf import compress, make_vcf

SAMPLES = [f"S{i}" for i in range(20)]
POSITIONS = [60_000 + 100 * i for i in range(10)]


@dataclass
class Federated:
    parent: Job
    children: list[Job]
    services: list[Service]


async def federated_job(hub: Runtime, user_id: str, targets: int = 3) -> Federated:
    services: list[Service] = []
    panels: list[ReferencePanel] = []
    for index in range(targets):
        service = await factories.make_service(
            hub, slug=f"service-{index}", credential_encrypted=hub.vault.encrypt(CREDENTIAL)
        )
        services.append(service)
        panels.append(await factories.make_panel(hub, service, slug=f"panel-{index}"))
    stored = await factories.make_file(hub, user_id, make_vcf(samples=20, variants=10))
    request = federated.FederatedRequest(
        name="cohort",
        build="hg19",
        phasing="eagle",
        input_file_ids=(stored.id,),
        targets=tuple(
            federated.Target(service=s.slug, reference_panel=p.slug)
            for s, p in zip(services, panels, strict=True)
        ),
    )
    async with hub.db.session() as session:
        parent = await federated.create_federated_job(
            session,
            owner_id=user_id,
            request=request,
            now=hub.clock.now(),
            max_active_jobs=10,
            max_targets=5,
        )
        children = await federated.children_of(session, parent.id)
    return Federated(parent=parent, children=children, services=services)


def dose_vcf(r2: list[float], *, shift: float = 0.0) -> bytes:
    """A dose VCF at POSITIONS with the given estimated r² per site (Minimac4's INFO)."""
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=20,length=63025520>",
        '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated r2">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"])
        + "\t"
        + "\t".join(SAMPLES),
    ]
    for site, (position, quality) in enumerate(zip(POSITIONS, r2, strict=True)):
        calls = []
        for sample in range(len(SAMPLES)):
            dose = min(2.0, ((sample + site) % 3) * 0.9 + shift)
            calls.append(f"{'0|1' if dose >= 0.5 else '0|0'}:{dose:.3f}")
        info = f"AF=0.3;MAF=0.3;R2={quality};IMPUTED"
        lines.append("\t".join(["20", str(position), ".", "A", "G", ".", "PASS", info, "GT:DS"]))
        lines[-1] += "\t" + "\t".join(calls)
    return compress(("\n".join(lines) + "\n").encode())


def results(dose: bytes) -> dict[str, bytes]:
    return {"chr20.dose.vcf.gz": dose}


async def test_three_targets_complete_each_once_and_are_compared_and_merged(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await federated_job(hub, user_id)
    first = [0.9] * 5 + [0.2] * 5  # the first child is better at the first five sites
    second = [0.5] * 5 + [0.95] * 5  # the second at the last five
    third = [0.4] * 10
    for child, r2 in zip(job.children, (first, second, third), strict=True):
        fake.configure(child.id, results=results(dose_vcf(r2, shift=0.05 * len(r2))))

    done = await drive(hub, Worker(hub), clock, job.parent.id, rounds=120)

    assert done.status == "completed", done.error_log
    assert done.progress == 100.0
    for child in job.children:
        assert fake.submissions(child.id) == 1
        assert (await load_job(hub, child.id)).status == "completed"
    names = {f.filename: f for f in await result_files(hub, job.parent.id)}
    assert {"comparison.html", "comparison.tsv", "chr20.merged.dose.vcf.gz"} <= set(names)
    merged = gzip.decompress(await stored_bytes(hub, names["chr20.merged.dose.vcf.gz"].storage_key))
    records = [line.split("\t") for line in merged.decode().splitlines() if line[0] != "#"]
    assert [int(r[1]) for r in records] == POSITIONS
    sources = [dict(f.split("=") for f in r[7].split(";") if "=" in f)["SRC"] for r in records]
    assert sources == ["t1"] * 5 + ["t2"] * 5
    updates = await status_updates(hub, job.parent.id)
    assert updates[-1].message.startswith("3 of 3 completed; compared and merged")


async def test_the_parent_follows_a_failure_and_a_retry_of_the_failed_target(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await federated_job(hub, user_id, targets=2)
    failing = job.children[1]
    fake.configure(failing.id, outcome="failed")
    worker = Worker(hub)

    ended = await drive(hub, worker, clock, job.parent.id)

    assert ended.status == "completed"  # one target completed: its results stand
    updates = await status_updates(hub, job.parent.id)
    assert updates[-1].message == "1 of 2 completed, 1 failed"
    assert (await load_job(hub, failing.id)).status == "failed"

    async with hub.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        parent = await actions.retry_job(
            session, user, job.parent.id, now=clock.now(), max_active_jobs=10
        )
        assert parent.status == JobStatus.RUNNING.value
    async with hub.db.session() as session:
        children = await federated.children_of(session, job.parent.id)
    retry = [c for c in children if c.retry_of == failing.id]
    assert len(retry) == 1
    fake.configure(retry[0].id, outcome="completed")

    again = await drive(hub, worker, clock, job.parent.id, rounds=120)

    assert again.status == "completed"
    assert fake.submissions(retry[0].id) == 1
    assert fake.submissions(failing.id) == 1
    last = (await status_updates(hub, job.parent.id))[-1].message
    assert last.startswith("2 of 2 completed")


@pytest.mark.parametrize("running", [True, False])
async def test_cancelling_the_parent_cancels_its_children(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str, running: bool
) -> None:
    job = await federated_job(hub, user_id, targets=2)
    fake.configure(polls_to_finish=50)
    worker = Worker(hub)
    if running:
        await drive(hub, worker, clock, job.parent.id, until=frozenset({JobStatus.RUNNING}))
    async with hub.db.session() as session:
        parent = await session.get(Job, job.parent.id)
        assert parent is not None
        await federated.cancel(session, parent, now=clock.now())

    ended = await drive(hub, worker, clock, job.parent.id)

    assert ended.status == "cancelled"
    for child in job.children:
        assert (await load_job(hub, child.id)).status == "cancelled"
    assert len(fake.cancels()) == (2 if running else 0)


async def test_each_child_uses_its_owners_credential_for_its_own_service(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await federated_job(hub, user_id, targets=2)
    await factories.make_user_credential(hub, user_id, job.services[0], "carols-own-token")

    await drive(hub, Worker(hub), clock, job.parent.id)

    used = [fake.job(child.id) for child in job.children]
    assert [u["credential"] if u else None for u in used] == ["carols-own-token", CREDENTIAL]


async def test_results_that_are_no_vcf_complete_the_parent_saying_why(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await federated_job(hub, user_id, targets=2)  # the fake's default: not a VCF

    done = await drive(hub, Worker(hub), clock, job.parent.id)

    assert done.status == "completed"
    assert await result_files(hub, job.parent.id) == []
    last = (await status_updates(hub, job.parent.id))[-1].message
    assert last.startswith("2 of 2 completed; the results could not be compared: ")
    assert done.error_log[-1]["transient"] is False


async def test_a_comparison_past_the_result_limit_is_not_kept(
    settings: Settings, clock: FakeClock, fake: FakeConnector, user_id: str
) -> None:
    # The same database as the `hub` fixture's, where `user_id` lives, with a smaller limit.
    async with make_hub(settings, clock, fake, max_result_bytes_per_job=4000) as hub:
        job = await federated_job(hub, user_id, targets=2)
        for child, r2 in zip(job.children, ([0.9] * 10, [0.5] * 10), strict=True):
            fake.configure(child.id, results=results(dose_vcf(r2)))

        done = await drive(hub, Worker(hub), clock, job.parent.id)

        assert done.status == "completed"
        for child in job.children:  # the targets' own results stand
            assert [f.filename for f in await result_files(hub, child.id)] == ["chr20.dose.vcf.gz"]
        last = (await status_updates(hub, job.parent.id))[-1].message
        assert "the results could not be compared" in last
        assert "4000" in last


async def test_a_target_cancelled_alone_and_retried_alone_is_followed_by_the_parent(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await federated_job(hub, user_id, targets=2)
    first, second = job.children
    fake.configure(second.id, polls_to_finish=50)
    worker = Worker(hub)
    await drive(hub, worker, clock, second.id, until=frozenset({JobStatus.RUNNING}))
    async with hub.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        await actions.cancel_job(session, user, second.id, now=clock.now())

    ended = await drive(hub, worker, clock, job.parent.id)

    assert ended.status == "completed"
    assert (await status_updates(hub, job.parent.id))[-1].message == (
        "1 of 2 completed, 1 cancelled"
    )
    assert (await load_job(hub, first.id)).status == "completed"
    assert fake.cancels() == [second.id]  # the service heard of the one cancel

    async with hub.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        retry = await actions.retry_job(
            session, user, second.id, now=clock.now(), max_active_jobs=10
        )
        assert (retry.parent_id, retry.retry_of, retry.target_index) == (
            job.parent.id,
            second.id,
            1,
        )
    assert (await load_job(hub, job.parent.id)).status == "running"  # reopened
    fake.configure(retry.id, polls_to_finish=2)

    again = await drive(hub, worker, clock, job.parent.id, rounds=120)

    assert again.status == "completed"
    last = (await status_updates(hub, job.parent.id))[-1].message
    assert last.startswith("2 of 2 completed")
