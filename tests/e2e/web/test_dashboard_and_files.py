"""The dashboard and the files pages in a real browser: a job followed live to completed
without a reload, a file's report and its deletion after confirmation, accessibly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.processes import cli
from tests.e2e.web.conftest import WebHub, check_accessibility, screenshot

JOB_WAIT_MS = 150_000  # a real local-engine job on a loaded 2-core machine


@pytest.fixture(scope="module")
def demo_targets(web_hub: WebHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = cli("testdata", "--panel", "demo", "--out", str(out), env=web_hub.process.env, cwd=out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "demo.targets.vcf.gz"


def upload(web_hub: WebHub, token: str, path: Path) -> str:
    with web_hub.api(token) as api, path.open("rb") as handle:
        answer = api.post("/api/v1/files", files={"file": (path.name, handle)})
    assert answer.status_code == 201, answer.text
    file_id: str = answer.json()["id"]
    return file_id


# Records every status a job row's badge shows, to prove the page moved through them.
WATCH_STATUSES = """() => {
    window.statusesSeen = [];
    const body = document.querySelector("#active-jobs tbody");
    const note = () => {
        for (const badge of body.querySelectorAll('[data-role="status"]')) {
            const text = badge.textContent.trim();
            if (text && window.statusesSeen[window.statusesSeen.length - 1] !== text) {
                window.statusesSeen.push(text);
            }
        }
    };
    new MutationObserver(note).observe(body, {subtree: true, childList: true, characterData: true});
    window.notReloaded = true;
}"""


def test_the_dashboard_follows_a_new_job_live_to_completed(
    signed_in: Callable[..., Page], web_hub: WebHub, demo_targets: Path
) -> None:
    page = signed_in("dora")
    token = web_hub.user("dora")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.get_by_text("No jobs yet")).to_be_visible()
    expect(page.get_by_role("link", name="New job").first).to_be_visible()
    page.evaluate(WATCH_STATUSES)

    file_id = upload(web_hub, token, demo_targets)
    with web_hub.api(token) as api:
        made = api.post(
            "/api/v1/jobs",
            json={
                "name": "live demo job",
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [file_id],
                "build": "hg19",
                "phasing": "beagle",
            },
        )
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]

    # The row appears by itself, then reaches completed, with no reload.
    row = page.locator(f'#active-jobs tr[data-job-id="{job_id}"]')
    expect(row.get_by_role("link", name="live demo job")).to_be_visible()
    expect(page.get_by_text("No jobs yet")).to_be_hidden()
    badge = row.locator('[data-role="status"]')
    expect(badge).to_have_text("completed", timeout=JOB_WAIT_MS)
    expect(row.locator("progress")).to_have_attribute("value", "100")
    expect(row).to_contain_text("finished: see Recent results")
    results = page.locator("#recent-results")
    expect(results.get_by_role("link", name="live demo job")).to_have_attribute(
        "href", f"/jobs/{job_id}"
    )
    expect(page.locator('[data-count="completed"]')).to_have_text("1")
    expect(page.locator('[data-count="total"]')).to_have_text("1")
    # The hub makes in-app notifications of the job's changes: the page says they arrived.
    expect(page.get_by_text("New notifications have arrived")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    seen = page.evaluate("window.statusesSeen")
    assert seen[-1] == "completed"
    assert len(seen) >= 2, seen  # it went through at least one earlier status on screen
    # The local service, healthy or not yet checked, with the hub's load on it.
    expect(page.get_by_role("rowheader", name="Local engine (Beagle 5.4)")).to_be_visible()

    check_accessibility(page)
    screenshot(page, "dashboard")
    # After a reload the job is a recent result, not an active one.
    page.reload()
    expect(
        page.locator("#recent-results").get_by_role("link", name="live demo job")
    ).to_be_visible()
    expect(page.locator(f'#active-jobs tr[data-job-id="{job_id}"]')).to_have_count(0)


def test_the_files_page_shows_the_report_and_deletes_after_confirmation(
    signed_in: Callable[..., Page], web_hub: WebHub, demo_targets: Path
) -> None:
    page = signed_in("fay")
    token = web_hub.user("fay")
    file_id = upload(web_hub, token, demo_targets)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Files").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Files")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=demo_targets.name))
    expect(row).to_contain_text("samples")
    expect(row).to_contain_text("hg19")
    expect(row).to_contain_text("upload")
    check_accessibility(page)
    screenshot(page, "files")

    row.get_by_role("link", name=demo_targets.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(demo_targets.name)
    expect(page.get_by_role("heading", name="Pre-flight report")).to_be_visible()
    expect(page.locator("dl.report")).to_contain_text("Samples")
    check_accessibility(page)
    screenshot(page, "file-report")

    # Another user: not found, in the browser too.
    other = signed_in("gil")
    assert other.goto(f"/files/{file_id}").status == 404  # type: ignore[union-attr]
    expect(other.get_by_role("heading", level=1)).to_have_text("Not found")

    page.goto("/files")
    delete = page.get_by_role("button", name=f"Delete {demo_targets.name}")
    # Said no: nothing happens.
    page.once("dialog", lambda dialog: dialog.dismiss())
    delete.click()
    expect(page.get_by_role("link", name=demo_targets.name)).to_be_visible()
    # Said yes: gone, and the page says so.
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    expect(page.get_by_role("status").filter(has_text="The file was deleted.")).to_be_visible()
    expect(page.get_by_role("link", name=demo_targets.name)).to_have_count(0)
    with web_hub.api(token) as api:
        assert api.get(f"/api/v1/files/{file_id}").status_code == 404


def test_both_pages_fit_a_phone(
    signed_in: Callable[..., Page], web_hub: WebHub, demo_targets: Path
) -> None:
    page = signed_in("hal", viewport={"width": 375, "height": 740})
    upload(web_hub, web_hub.user("hal"), demo_targets)
    for path in ("/", "/files"):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        check_accessibility(page)
