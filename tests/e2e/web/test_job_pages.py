"""A job followed in a real browser: created through the REST API on the local engine with
the demo targets, the page goes from waiting to completed by itself (no reload), a result
downloads with the checksum the page shows, and nobody else can open the page."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from imputehub.cli.testdata import write_demo_targets
from tests.e2e.web.conftest import WebHub, check_accessibility, screenshot
from tests.support.vcf import write_vcf

JOB_WAIT_MS = 45_000


@pytest.fixture(scope="module")
def simulating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[Path]]:
    """The demo targets, simulated in a thread while the hub and the browser start."""
    out = tmp_path_factory.mktemp("demo-targets")

    def simulate() -> Path:
        write_demo_targets(out)
        return out / "demo.targets.vcf.gz"

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(simulate)


@pytest.fixture
def demo_targets(simulating: Future[Path], web_hub: WebHub) -> Path:
    return simulating.result(timeout=120)


def create_job(web_hub: WebHub, token: str, targets: Path, name: str, mode: str = "qc_only") -> str:
    """A job on the local engine; quality control only unless told (no Beagle run: quick)."""
    with web_hub.api(token) as api:
        uploaded = api.post("/api/v1/files", files={"file": (targets.name, targets.read_bytes())})
        assert uploaded.status_code == 201, uploaded.text
        job = api.post(
            "/api/v1/jobs",
            json={
                "name": name,
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [uploaded.json()["id"]],
                "build": "hg19",
                "mode": mode,
                "phasing": "beagle",
            },
        )
        assert job.status_code == 201, job.text
        return str(job.json()["id"])


@pytest.fixture(scope="module")
def failing_job(web_hub: WebHub, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job whose sites lie nowhere near the demo panel's: its QC finds nothing to impute.
    Started by the first test so that it has failed by the time its own test looks."""
    study = tmp_path_factory.mktemp("elsewhere") / "elsewhere.vcf.gz"
    write_vcf(study, samples=20, start=60_000)
    return create_job(web_hub, web_hub.user("fay"), study, "far from the panel", "imputation")


def test_a_job_goes_live_to_completed_and_its_results_download_intact(
    simulating: Future[Path],
    failing_job: str,
    web_hub: WebHub,
    signed_in: Callable[..., Page],
    demo_targets: Path,
) -> None:
    token = web_hub.user("juno")
    page = signed_in("juno")
    # Imputed for real (Beagle): long enough to watch it move.
    job_id = create_job(web_hub, token, demo_targets, "demo study <b>1</b>", "imputation")

    # The list in a second tab follows the same job on the user's event stream.
    lister = page.context.new_page()
    lister.goto("/jobs")
    listed = lister.locator(f'tr[data-job-id="{job_id}"]')
    expect(listed.get_by_role("link", name="demo study <b>1</b>", exact=True)).to_be_visible()
    lister.evaluate("window.stillTheSamePage = true")

    page.goto(f"/jobs/{job_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("demo study <b>1</b>")
    # A marker that a reload would wipe out.
    page.evaluate("window.stillTheSamePage = true")
    status = page.locator("#job-status")
    expect(status).not_to_have_text("completed", timeout=1)

    expect(status).to_have_text("completed", timeout=JOB_WAIT_MS)
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#job-progress")).to_have_attribute("value", "100")
    expect(page.locator("#live-status")).to_contain_text("completed")
    # The results and the QC statistics arrived with it.
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="qc_report.txt"))
    expect(row).to_be_visible()
    expect(page.get_by_role("heading", name="Quality control statistics")).to_be_visible()
    expect(page.locator(".timeline .step-done")).to_have_count(4)
    expect(page.locator("#download-command")).to_contain_text(f"imputehub jobs download {job_id}")
    check_accessibility(page)
    screenshot(page, "job")

    shown = row.locator("code.sha256").inner_text().strip()
    with page.expect_download() as download_info:
        row.get_by_role("link", name="qc_report.txt").click()
    downloaded = Path(download_info.value.path())
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == shown

    expect(listed.locator("[data-role=status]")).to_have_text("completed")
    assert lister.evaluate("window.stillTheSamePage") is True
    check_accessibility(lister)
    screenshot(lister, "jobs")

    stranger = signed_in("stella")
    answer = stranger.goto(f"/jobs/{job_id}")
    assert answer is not None
    assert answer.status == 404
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(stranger.locator("main")).not_to_contain_text("demo study")


def test_several_jobs_deleted_at_once_at_phone_width(
    web_hub: WebHub, signed_in: Callable[..., Page], demo_targets: Path
) -> None:
    token = web_hub.user("kit")
    page = signed_in("kit", viewport={"width": 375, "height": 740})
    first = create_job(web_hub, token, demo_targets, "first of two")
    create_job(web_hub, token, demo_targets, "second of two")
    page.goto("/jobs")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # fits the screen
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Select first of two").check()
    every = page.get_by_label("Select all jobs on this page")
    assert every.evaluate("box => box.indeterminate")  # some, not all
    every.check()
    expect(page.get_by_label("Select second of two")).to_be_checked()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deleting 2 jobs")
    # Each job gets its own outcome: deleted, or (if it was still running) cancelled instead.
    for name in ("first of two", "second of two"):
        outcome = page.get_by_role("row").filter(has_text=name)
        expect(outcome).to_contain_text(re.compile(r"Done: (deleted|still active)"))
    check_accessibility(page)
    page.get_by_role("link", name="Back to your jobs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    # Deleted, or on its way to cancelled: never still waiting or running.
    left = page.locator(f'tr[data-job-id="{first}"] [data-role=status]').all_inner_texts()
    assert not set(left) & {"pending", "queued", "running"}, left

    # A job started elsewhere while the list is open: the list says so, live.
    create_job(web_hub, token, demo_targets, "third, from a script")
    expect(page.locator("#new-jobs")).to_contain_text("A new job has started.")
    page.locator("#new-jobs").get_by_role("link", name="Show them").click()
    expect(page.get_by_role("link", name="third, from a script", exact=True)).to_be_visible()


def test_a_failed_job_explains_why_and_offers_a_qc_only_run_at_phone_width(
    failing_job: str, signed_in: Callable[..., Page]
) -> None:
    page = signed_in("fay", viewport={"width": 375, "height": 740})
    page.goto(f"/jobs/{failing_job}")
    expect(page.locator("#job-status")).to_have_text("failed", timeout=JOB_WAIT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # fits a phone
    failure = page.get_by_role("region", name="Why it failed")
    expect(failure).to_contain_text("No part of the data passed quality control")
    expect(failure).to_contain_text("What to do:")
    expect(failure.locator("pre")).to_contain_text("matches the panel")  # the raw message
    expect(page.locator(".timeline .step-failed h3")).to_contain_text("Quality Control")
    check_accessibility(page)
    screenshot(page, "job-failed")

    page.get_by_role("button", name="Run again as QC only").click()
    expect(page.get_by_role("status").filter(has_text="quality-control-only")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("far from the panel")
    assert f"/jobs/{failing_job}" not in page.url  # a new job
