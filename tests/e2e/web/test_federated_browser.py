"""A federated job in a real browser: "Send to several services" on the new-job page, a
refused target named next to it, then the job's page with its targets, each linking back."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from imputehub.cli.testdata import write_demo_targets
from tests.e2e.web.conftest import WebHub, check_accessibility, screenshot


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    write_demo_targets(out)
    return out


LONG_MS = 240_000  # two imputations on the local engine, then their comparison


def target(page: Page, number: int) -> Locator:
    return page.locator("li.target-row").nth(number - 1)


def test_several_targets_from_the_new_job_page(
    signed_in: Callable[..., Page], web_hub: WebHub, demo: Path
) -> None:
    page = signed_in("fede")
    page.goto("/jobs/new")
    upload = demo / "demo.targets.vcf.gz"
    page.get_by_label("Choose VCF files").set_input_files(upload)
    expect(page.get_by_text("Arrived and checked")).to_be_visible()
    page.get_by_role("radio", name=re.compile("demo", re.IGNORECASE)).check()

    # Several targets: the chosen panel is the first; a second row waits for its choice.
    page.get_by_label("Send to several services or panels").check()
    expect(page.locator("li.target-row")).to_have_count(2)
    expect(target(page, 1).get_by_role("heading")).to_have_text("Target 1")
    first = target(page, 1).get_by_label("Service and reference panel")
    expect(first.locator("option:checked")).to_contain_text("Demo panel")
    expect(page.locator("#population-field")).to_be_hidden()

    # One more, then removed again.
    page.get_by_role("button", name="Add another target").click()
    expect(page.locator("li.target-row")).to_have_count(3)
    page.get_by_role("button", name="Remove target 3").click()
    expect(page.locator("li.target-row")).to_have_count(2)

    # The same panel and population twice: the hub refuses target 2, named next to it.
    second = target(page, 2).get_by_label("Service and reference panel")
    second.select_option(index=1)
    page.get_by_label("Job name").fill("demo twice")
    expect(page.locator("#review-summary")).to_contain_text("2. ")
    expect(page.locator("#curl-lines")).to_contain_text('"targets"')
    cli = page.locator("#cli-command")
    expect(cli).to_contain_text("--target local:demo \\")
    expect(cli).not_to_contain_text("--panel")
    check_accessibility(page)
    screenshot(page, "new-job-federated")
    page.get_by_role("button", name="Submit job").click()
    refusal = target(page, 2).locator(".target-error")
    expect(refusal).to_contain_text("the same service, panel and population as target 1")
    expect(target(page, 1).locator(".target-error")).to_be_hidden()
    expect(page.locator("#error-targets")).to_contain_text("The job was not created")
    expect(page).to_have_url(f"{web_hub.base}/jobs/new")
    # The per-file fit lines still show, the chosen panel marked.
    expect(page.locator(".fit.fits.chosen")).to_contain_text("Demo panel")

    # Another population makes it a target of its own: the job is created.
    target(page, 2).get_by_label("Population").select_option("demo")
    expect(cli).to_contain_text("--target local:demo:demo")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    parent_url = page.url
    expect(page.get_by_role("heading", level=1)).to_contain_text("federated · 2 targets")
    rows = page.locator("#children tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#job-summary")).to_contain_text("of 2 completed")
    check_accessibility(page)

    # A target's own page points back to the federated job.
    rows.first.get_by_role("link").click()
    expect(page.locator("#part-of")).to_contain_text("Part of federated job demo twice")
    page.locator("#part-of").get_by_role("link", name="demo twice").click()
    expect(page).to_have_url(parent_url)

    # Live, without a reload: both targets complete on the local engine, the hub compares
    # them, and the comparison opens in the browser.
    expect(page.locator("#job-status")).to_have_text("completed", timeout=LONG_MS)
    expect(page.locator("#job-summary")).to_have_text("2 of 2 completed")
    expect(page.locator("#children .status-completed")).to_have_count(2)
    screenshot(page, "federated-job")
    link = page.get_by_role("link", name="Open the comparison of the targets' results")
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    expect(report).to_have_title("Federated job comparison")
    screenshot(report, "federated-comparison")
    expect(page.get_by_role("link", name="comparison.tsv")).to_be_visible()
