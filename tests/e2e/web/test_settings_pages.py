"""Settings and notifications in a real browser: the forms round-trip, secrets are shown
once, every page passes axe, and the header's unread badge rises live when the hub makes a
notification (a job of the user's, created and cancelled through the API)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.processes import cli
from tests.e2e.web.conftest import WebHub, check_accessibility, screenshot

SECRET = "sam-own-michigan-token-0123-WXYZ"
PUBLIC_HOOK = "https://93.184.215.14/imputehub/hook"  # a public address: no DNS needed


def accept_the_confirmation(page: Page) -> None:
    page.once("dialog", lambda dialog: dialog.accept())


def test_settings_round_trip(signed_in: Callable[..., Page], web_hub: WebHub) -> None:
    page = signed_in("sam")
    page.goto("/settings")
    settings_nav = page.get_by_role("navigation", name="Settings")
    expect(settings_nav.get_by_role("link", name="Profile and password")).to_have_attribute(
        "aria-current", "page"
    )
    check_accessibility(page)
    screenshot(page, "settings")

    # Profile: a malformed address comes back with the message, focused; then a good one.
    email = page.get_by_label("E-mail address")
    email.fill("not an address")
    page.get_by_role("button", name="Save e-mail address").click()
    expect(page.locator("#email-error")).to_contain_text("not valid")
    expect(page.get_by_label("E-mail address")).to_be_focused()
    check_accessibility(page)
    page.get_by_label("E-mail address").fill("sam@lab.example.org")
    page.get_by_role("button", name="Save e-mail address").click()
    expect(page.get_by_role("status").filter(has_text="e-mail address was saved")).to_be_visible()
    expect(page.get_by_label("E-mail address")).to_have_value("sam@lab.example.org")

    # Tokens: made, shown once, works against the API, revoked.
    settings_nav.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("laptop script")
    page.get_by_label("Expires after (days)").fill("7")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token")
    expect(shown).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Your new token"))).to_be_focused()
    token = shown.input_value()
    me = httpx.get(f"{web_hub.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "sam"
    check_accessibility(page)
    page.get_by_role("button", name="Copy").click()
    page.goto("/settings/tokens")  # the list: the token never again
    expect(page.locator("#new-token")).to_have_count(0)
    assert token not in page.content()
    row = page.get_by_role("row", name=re.compile("laptop script"))
    accept_the_confirmation(page)
    row.get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.get_by_role("status").filter(has_text="revoked")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("laptop script"))).to_have_count(0)
    me = httpx.get(f"{web_hub.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401

    # Notification preferences: a box ticked stays ticked.
    settings_nav.get_by_role("link", name="Notification preferences").click()
    queued_by_mail = page.get_by_label("Job queued: E-mail")
    expect(queued_by_mail).not_to_be_checked()
    queued_by_mail.check()
    page.get_by_label("Job running: In the app").uncheck()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status").filter(has_text="preferences were saved")).to_be_visible()
    expect(page.get_by_label("Job queued: E-mail")).to_be_checked()
    expect(page.get_by_label("Job running: In the app")).not_to_be_checked()
    check_accessibility(page)

    # Webhooks: a refused URL said in words; a good one shows its secret once; deleted.
    settings_nav.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL", exact=True).fill("https://127.0.0.1/hook")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#url-error")).to_contain_text("public addresses only")
    expect(page.get_by_label("URL", exact=True)).to_be_focused()
    page.get_by_label("URL", exact=True).fill(PUBLIC_HOOK)
    page.get_by_label("Job failed").check()
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#new-secret")).to_have_value(re.compile(r"^whsec_"))
    check_accessibility(page)
    page.goto("/settings/webhooks")
    row = page.get_by_role("row").filter(has_text=PUBLIC_HOOK)
    expect(row).to_contain_text("none yet")
    accept_the_confirmation(page)
    row.get_by_role("button", name=re.compile("Delete")).click()
    expect(page.get_by_role("status").filter(has_text="webhook was deleted")).to_be_visible()
    expect(page.get_by_text("You have no webhooks.")).to_be_visible()

    # Service credentials: set (never shown again), test now (the service cannot be
    # reached from here: said in words), delete.
    with web_hub.api() as admin:
        made = admin.post(
            "/api/v1/services",
            json={
                "name": "Michigan (test)",
                "api_type": "michigan",
                "base_url": "https://imputation.example.org",
                "supported_builds": ["hg19"],
            },
        )
        assert made.status_code == 201, made.text
    settings_nav.get_by_role("link", name="Service credentials").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your service credentials")
    section = page.get_by_role("region", name="Michigan (test)")
    expect(section).to_contain_text("not set")
    check_accessibility(page)
    section.get_by_label("Credential for Michigan (test)").fill(SECRET)
    section.get_by_role("button", name="Save credential").click()
    expect(page.get_by_role("status").filter(has_text="credential was saved")).to_be_visible()
    expect(section).to_contain_text("set, not verified")
    expect(section).to_contain_text(SECRET[-4:])
    assert SECRET not in page.content()
    expect(section.get_by_label("Replace the credential for Michigan (test)")).to_have_value("")
    section.get_by_role("button", name=re.compile("Test now")).click()
    expect(section.get_by_role("alert")).to_be_focused()
    expect(section.get_by_role("alert")).to_contain_text("service")
    check_accessibility(page)
    accept_the_confirmation(page)
    section.get_by_role("button", name=re.compile("Delete")).click()
    expect(page.get_by_role("status").filter(has_text="credential was deleted")).to_be_visible()
    expect(section).to_contain_text("not set")


def test_settings_work_at_phone_width(signed_in: Callable[..., Page]) -> None:
    page = signed_in("pat", viewport={"width": 375, "height": 740})
    for path in ("/settings/tokens", "/settings/notifications", "/settings/webhooks"):
        page.goto(path)
        expect(page.get_by_role("navigation", name="Settings")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide"
    check_accessibility(page)


def test_the_unread_badge_rises_live_and_the_notifications_page_marks_read(
    signed_in: Callable[..., Page], web_hub: WebHub, tmp_path: Path
) -> None:
    token = web_hub.user("nora")
    made = cli("testdata", "--panel", "demo", "--out", "demo", env=dict(os.environ), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    page = signed_in("nora")
    badge = page.locator("#unread-count")
    # The badge follows the user's event stream from the moment it is open.
    with page.expect_response(lambda response: "/app/api/v1/events" in response.url):
        page.goto("/settings")
    expect(badge).to_be_hidden()

    with web_hub.api(token) as api:
        targets = tmp_path / "demo" / "demo.targets.vcf.gz"
        uploaded = api.post("/api/v1/files", files={"file": (targets.name, targets.read_bytes())})
        assert uploaded.status_code == 201, uploaded.text
        job = api.post(
            "/api/v1/jobs",
            json={
                "name": "heard of live",
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [uploaded.json()["id"]],
                "build": "hg19",
                "phasing": "beagle",
            },
        )
        assert job.status_code == 201, job.text
        # Cancelled at once: an event (queued and/or cancelled) without a whole imputation.
        cancelled = api.post(f"/api/v1/jobs/{job.json()['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text

    expect(badge).to_be_visible()
    expect(badge).to_have_text(re.compile(r"^\s*[1-9]\d* unread"))
    expect(page.locator("#live-status")).to_contain_text("unread notification")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    expect(page.locator(".notification").first).to_contain_text("heard of live")
    check_accessibility(page)
    screenshot(page, "notifications")
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_role("status").filter(has_text="marked as read")).to_be_visible()
    expect(badge).to_be_hidden()
