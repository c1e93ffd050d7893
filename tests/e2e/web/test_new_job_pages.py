"""A new job in a real browser: resumable uploads (one cut short by a reload, then resumed),
the pre-flight report, a ✗ compatibility line, the review's commands, and a submitted job on
the local engine."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Request, Route, expect

from imputehub.cli.testdata import write_demo_targets
from tests.e2e.web.conftest import WebHub, check_accessibility, screenshot
from tests.support.vcf import write_vcf

PART_SIZE = 4096  # the hub's local storage takes parts this small: many parts, quickly


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo panel's targets (and truth, a bigger valid VCF) as a user writes them."""
    out = tmp_path_factory.mktemp("demo")
    write_demo_targets(out)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card(page: Page, name: str) -> Locator:
    """The file's card in the page's list of files for the job."""
    return page.locator("li.file-card", has=page.get_by_role("heading", name=name, exact=True))


def test_upload_check_and_submit_a_job_on_the_local_engine(
    signed_in: Callable[..., Page], web_hub: WebHub, demo: Path, tmp_path: Path
) -> None:
    page = signed_in("nora")
    page.goto("/jobs/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("New job")
    # The catalogue: the local engine and its demo panel, with their facts.
    demo_panel = page.get_by_role("radio", name=re.compile("demo", re.IGNORECASE))
    expect(demo_panel).to_have_count(1)

    targets = demo / "demo.targets.vcf.gz"
    wrong = write_vcf(tmp_path / "study.hg38.vcf.gz", build="hg38", samples=20)
    page.get_by_label("Choose VCF files").set_input_files([targets, wrong])

    # Each file's pre-flight report appears once it has arrived.
    good = card(page, targets.name)
    expect(good.get_by_text("Arrived and checked")).to_be_visible()
    report = good.locator(".report")
    expect(report).to_contain_text("Samples")
    expect(report.locator("dd").first).to_have_text("50")
    expect(report).to_contain_text("hg19")
    expect(report).to_contain_text("Chromosomes")

    # Its compatibility: ✓ with the demo panel; the hg38 file: ✗ and why.
    expect(good.locator(".fit.fits")).to_contain_text("Demo panel")
    misfit = card(page, wrong.name).locator(".fit.misfit")
    expect(misfit).to_contain_text("✗")
    expect(misfit).to_contain_text("looks like hg38 data")
    expect(misfit).to_contain_text("the job's build is hg19")

    # The rest of the form; the review shows the job as commands.
    demo_panel.check()
    page.get_by_label("Phasing").select_option("beagle")
    page.get_by_label("Job name").fill("demo from the browser")
    cli = page.locator("#cli-command")
    expect(cli).to_contain_text("imputehub submit demo.targets.vcf.gz study.hg38.vcf.gz")
    expect(cli).to_contain_text("--panel demo")
    expect(cli).to_contain_text("--phasing beagle")
    expect(cli).to_contain_text("--name 'demo from the browser'")
    curl = page.locator("#curl-lines")
    expect(curl).to_contain_text('-H "Authorization: Bearer $IMPUTEHUB_TOKEN"')
    expect(curl).to_contain_text(f"{web_hub.base}/api/v1/jobs")
    check_accessibility(page)
    screenshot(page, "new-job")

    # The hub refuses the job with the hg38 file: its words, next to the files.
    page.get_by_role("button", name="Submit job").click()
    files_error = page.locator("#error-input_file_ids")
    expect(files_error).to_contain_text("looks like hg38 data")
    expect(page).to_have_url(f"{web_hub.base}/jobs/new")

    card(page, wrong.name).get_by_role("button", name="Remove from this job").click()
    expect(page.locator("#review-summary")).not_to_contain_text(wrong.name)
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    with web_hub.api(web_hub.user("nora")) as api:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
    assert job["name"] == "demo from the browser"
    assert [f["filename"] for f in job["input_files"]] == [targets.name]
    assert job["phasing"] == "beagle"
    assert job["build"] == "hg19"


def test_an_upload_cut_short_by_a_reload_resumes_and_arrives_intact(
    signed_in: Callable[..., Page], web_hub: WebHub, demo: Path
) -> None:
    big = demo / "demo.truth.vcf.gz"  # ~70 KB: some 18 parts of 4 KiB
    page = signed_in("ria")
    page.goto("/jobs/new")
    # Nothing chosen yet: the page says what is missing, next to each field.
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#error-input_file_ids")).to_have_text("Add at least one VCF file.")
    expect(page.locator("#error-reference_panel_id")).to_contain_text("Choose a reference panel")
    expect(page.locator("#error-name")).to_have_text("Give the job a name.")
    expect(page.get_by_label("Choose VCF files")).to_be_focused()

    page.evaluate(f"ImputeHubUploads.options.partSize = {PART_SIZE}")

    # The connection drops after a few parts: the page keeps trying...
    sent: list[str] = []

    def flaky(route: Route) -> None:
        if route.request.method == "PUT" and len(sent) < 5:
            sent.append(route.request.url)
            route.continue_()
        else:
            route.abort("connectionreset")

    page.route("**/app/api/v1/uploads/*/part/*", flaky)
    page.get_by_label("Choose VCF files").set_input_files(big)
    progress = card(page, big.name)
    expect(progress.get_by_text("Connection trouble")).to_be_visible()
    expect(progress.locator(".upload-message")).to_contain_text("trying again")
    progress.get_by_role("button", name="Pause").click()
    expect(progress.locator(".upload-text")).to_contain_text("Paused")
    expect(progress.get_by_role("button", name="Resume")).to_be_visible()

    # ...then the page is reloaded: it lists the unfinished upload and asks for the file.
    page.unroute("**/app/api/v1/uploads/*/part/*")
    page.reload()
    unfinished = page.get_by_role("region", name="Unfinished uploads")
    expect(unfinished).to_contain_text(big.name)
    expect(unfinished).to_contain_text("parts to send")
    resent: list[int] = []
    checksums: list[str] = []

    def part_sent(request: Request) -> None:
        if request.method == "PUT" and "/part/" in request.url:
            resent.append(int(request.url.rsplit("/", 1)[1]))
            checksums.append(request.headers.get("x-part-sha256", ""))

    page.on("request", part_sent)
    page.get_by_label(f"Choose {big.name} again").set_input_files(big)
    expect(card(page, big.name).get_by_text("Arrived and checked")).to_be_visible()
    expect(unfinished).to_be_hidden()

    # Only the missing parts travelled again, and the file arrived whole.
    total = -(-big.stat().st_size // PART_SIZE)
    assert 0 < len(resent) <= total - 5
    assert all(re.fullmatch("[0-9a-f]{64}", value) for value in checksums)  # each part's SHA-256
    with web_hub.api(web_hub.user("ria")) as api:
        files = api.get("/api/v1/files").json()["items"]
    [stored] = [f for f in files if f["filename"] == big.name]
    assert stored["sha256"] == sha256(big)
    expect(card(page, big.name).locator(".file-facts")).to_contain_text(sha256(big))
    assert stored["size"] == big.stat().st_size
    check_accessibility(page)


def test_phone_width_like_a_past_job_and_a_dropped_file_over_a_flaky_connection(
    signed_in: Callable[..., Page], web_hub: WebHub, demo: Path
) -> None:
    token = web_hub.user("pat")
    with web_hub.api(token) as api, (demo / "demo.targets.vcf.gz").open("rb") as handle:
        uploaded = api.post("/api/v1/files", files={"file": ("demo.targets.vcf.gz", handle)})
        assert uploaded.status_code == 201, uploaded.text
        job = api.post(
            "/api/v1/jobs",
            json={
                "name": "first try",
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [uploaded.json()["id"]],
                "build": "hg19",
                "phasing": "beagle",
            },
        )
        assert job.status_code == 201, job.text
    page = signed_in("pat", viewport={"width": 375, "height": 740})
    page.goto(f"/jobs/new?like={job.json()['id']}&mode=qc_only")
    expect(page.get_by_label("Job name")).to_have_value("first try (QC only)")
    expect(page.get_by_label("Quality control only")).to_be_checked()
    expect(page.get_by_label("Phasing")).to_have_value("beagle")
    expect(card(page, "demo.targets.vcf.gz").locator(".fit.fits")).to_contain_text("Demo panel")
    expect(page.locator("#cli-command")).to_contain_text("--mode qc_only")

    # A connection that drops for a moment: the part is sent again, without a reload.
    drops: list[str] = []

    def drop_twice(route: Route) -> None:
        if len(drops) < 2:
            drops.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/app/api/v1/uploads/*/part/*", drop_twice)
    truth = demo / "demo.truth.vcf.gz"
    # This one is dragged and dropped onto the page, as from a file manager.
    dropped = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name));
            return data;
        }""",
        [truth.name, base64.b64encode(truth.read_bytes()).decode()],
    )
    page.locator("#dropzone").dispatch_event("drop", {"dataTransfer": dropped})
    expect(card(page, truth.name).get_by_text("Arrived and checked")).to_be_visible()
    assert len(drops) == 2
    expect(page.locator("#review-summary")).to_contain_text(truth.name)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check_accessibility(page)


def test_an_upload_shows_its_speed_and_time_left_and_a_cancel_frees_it_at_the_hub(
    signed_in: Callable[..., Page], web_hub: WebHub, demo: Path
) -> None:
    big = demo / "demo.truth.vcf.gz"
    page = signed_in("cleo")
    page.goto("/jobs/new")
    page.evaluate(f"ImputeHubUploads.options.partSize = {PART_SIZE}")
    started: list[str] = []
    deleted: list[int] = []
    # A slow link (about 16 KB/s up): long enough to read the speed and to cancel.
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 50, "downloadThroughput": -1, "uploadThroughput": 16_000},
    )
    page.on(
        "response",
        lambda response: (
            started.append(response.json()["upload_id"])
            if response.url.endswith("/uploads/init") and response.status == 201
            else deleted.append(response.status)
            if response.request.method == "DELETE"
            else None
        ),
    )
    page.get_by_label("Choose VCF files").set_input_files(big)
    progress = card(page, big.name)
    expect(progress.locator(".upload-text")).to_contain_text(re.compile(r"/s.* left"))
    progress.get_by_role("button", name=f"Cancel upload: {big.name}").click()
    expect(progress.locator(".upload-text")).to_contain_text("Cancelled")
    for _ in range(100):  # the page frees the upload at the hub (DELETE) once cancelled
        if deleted:
            break
        page.wait_for_timeout(100)
    assert deleted == [204]
    with web_hub.api(web_hub.user("cleo")) as api:
        gone = api.get(f"/api/v1/uploads/{started[0]}")
    assert gone.status_code == 404  # nothing left half-stored at the hub
