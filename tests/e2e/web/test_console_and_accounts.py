"""The admin console and the account life cycle in a real browser, against a real `serve`
whose mails go to a real SMTP server on loopback (aiosmtpd): sign-up in each mode, a reset
link used once, reused and expired, deleting your own account; a user refused the console,
maintenance (the banner, held jobs released), a Michigan-type service (emulated) registered,
checked and synced from the console, a local panel uploaded and imported in the browser and
then used by the self-test's job (real Beagle); every console page passes axe."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.web.conftest import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    WebHub,
    check_accessibility,
    open_context,
    screenshot,
    sign_in,
)
from tests.support import vcf
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.panels import panel_text
from tests.support.smtp_server import Received, SmtpServer, smtp_server

NEW_PASSWORD = "a new password typed in the browser 7"
PLATFORM_TOKEN = "console-platform-token-0123456789"
CONSOLE_PAGES = [
    "/console",
    "/console/services",
    "/console/panels",
    "/console/users",
    "/console/queue",
    "/console/stats",
    "/console/audit",
    "/console/settings",
]
SLOW_MS = 120_000  # a real Beagle run, on a loaded machine


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="module")
def web_hub_env(smtp: SmtpServer) -> dict[str, str]:
    return {
        "IMPUTEHUB_SMTP_HOST": smtp.host,
        "IMPUTEHUB_SMTP_PORT": str(smtp.port),
        "IMPUTEHUB_SMTP_SECURITY": "none",
        "IMPUTEHUB_SMTP_FROM": "hub@example.org",
    }


def mails_to(smtp: SmtpServer, address: str, count: int = 1) -> list[Received]:
    """The first `count` mails to `address`, once they arrived."""
    for _ in range(1000):
        found = [m for m in smtp.messages() if address in m.rcpt_tos]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no mail to {address}")


def link_in(mail: Received, web_hub: WebHub, page: str) -> str:
    links = [u for u in re.findall(r"https?://\S+", mail.body("plain")) if urlsplit(u).path == page]
    assert len(links) == 1, mail.body("plain")
    assert links[0].startswith(web_hub.base + page), links[0]  # the hub's own address
    return links[0].removeprefix(web_hub.base)


def set_signup_mode(web_hub: WebHub, mode: str) -> None:
    with web_hub.api() as admin:
        answer = admin.patch("/api/v1/admin/settings", json={"signup_mode": mode})
        assert answer.status_code == 200, answer.text


@pytest.fixture
def visitor(browser: Browser, web_hub: WebHub) -> Iterator[Callable[[], Page]]:
    """visitor() -> a page of a new browser context, signed in as nobody; each context is
    closed after the test, and a script error on any page fails it."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_page() -> Page:
        context = open_context(browser, web_hub)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], errors


def sign_up(page: Page, username: str, email: str) -> None:
    page.goto("/login")
    page.get_by_role("link", name="Create one").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill(USER_PASSWORD)
    page.get_by_label("Password again").fill(USER_PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()


def test_sign_up_in_each_mode(
    visitor: Callable[[], Page],
    web_hub: WebHub,
    smtp: SmtpServer,
    signed_in: Callable[..., Page],
) -> None:
    page = visitor()
    page.goto("/signup")
    expect(page.get_by_text("does not take sign-ups")).to_be_visible()  # closed by default

    # Open: the address confirmed by the mailed link opens the account.
    set_signup_mode(web_hub, "open")
    page.goto("/signup")
    check_accessibility(page)
    screenshot(page, "sign-up")
    sign_up(page, "olga", "olga@uni.example.org")
    link = link_in(mails_to(smtp, "olga@uni.example.org")[0], web_hub, "/verify-email")
    page.goto(link)
    check_accessibility(page)
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_role("heading", name="Your address is confirmed")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    sign_in(page, "olga", USER_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Dashboard"))

    # Approval: confirmed, then an admin approves in the console; the requester is told.
    set_signup_mode(web_hub, "approval")
    other = visitor()
    sign_up(other, "pavel", "pavel@uni.example.org")
    other.goto(link_in(mails_to(smtp, "pavel@uni.example.org")[0], web_hub, "/verify-email"))
    other.get_by_role("button", name="Confirm my address").click()
    expect(other.get_by_text("An admin of the hub will look at your request")).to_be_visible()
    other.goto("/login")
    other.get_by_label("Username or e-mail address").fill("pavel")
    other.get_by_label("Password").fill(USER_PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("alert")).to_contain_text("waits for an admin's approval")

    admin = signed_in("admin", ADMIN_PASSWORD)
    admin.goto("/console/users?state=pending")
    row = admin.get_by_role("row", name=re.compile("pavel"))
    row.get_by_role("button", name=re.compile("Approve")).click()
    expect(
        admin.get_by_role("status").filter(has_text=re.compile("approved", re.I))
    ).to_be_visible()
    ready = mails_to(smtp, "pavel@uni.example.org", 2)[1]
    assert "ready" in str(ready.message["Subject"])
    sign_in(other, "pavel", USER_PASSWORD)
    expect(other.get_by_role("heading", level=1)).to_have_text(re.compile("Dashboard"))
    set_signup_mode(web_hub, "closed")


def expire_unused_links(web_hub: WebHub) -> None:
    """Time passes for the hub's links: the unused ones' expiry moves to their creation."""
    with sqlite3.connect(web_hub.home / "data" / "imputehub.db") as db:
        db.execute("UPDATE account_links SET expires_at = created_at WHERE used_at IS NULL")


def test_a_reset_link_works_once_and_not_after_it_expires(
    visitor: Callable[[], Page], web_hub: WebHub, smtp: SmtpServer
) -> None:
    web_hub.user("rita")
    page = visitor()
    page.goto("/login")
    page.get_by_role("link", name="Forgotten your password?").click()
    check_accessibility(page)
    page.get_by_label("E-mail address or username").fill("rita@example.org")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    link = link_in(mails_to(smtp, "rita@example.org")[0], web_hub, "/reset-password")

    page.goto(link)
    check_accessibility(page)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("status").filter(has_text="Your new password is set")).to_be_visible()
    sign_in(page, "rita", NEW_PASSWORD)
    old = httpx.post(
        f"{web_hub.base}/api/v1/auth/login", json={"username": "rita", "password": USER_PASSWORD}
    )
    assert old.status_code == 401

    # The same link again: refused.
    again = visitor()
    again.goto(link)
    again.get_by_label("New password", exact=True).fill("yet another password 99")
    again.get_by_label("New password again").fill("yet another password 99")
    again.get_by_role("button", name="Set the new password").click()
    expect(again.get_by_text("this link was used already", exact=False)).to_be_visible()

    # A new link, left until it expires: refused.
    again.goto("/forgot-password")
    again.get_by_label("E-mail address or username").fill("rita")
    again.get_by_role("button", name="Send me a link").click()
    late = link_in(mails_to(smtp, "rita@example.org", 2)[1], web_hub, "/reset-password")
    expire_unused_links(web_hub)
    again.goto(late)
    again.get_by_label("New password", exact=True).fill("yet another password 99")
    again.get_by_label("New password again").fill("yet another password 99")
    again.get_by_role("button", name="Set the new password").click()
    expect(again.get_by_text("has expired", exact=False)).to_be_visible()
    check_accessibility(again)
    still = httpx.post(
        f"{web_hub.base}/api/v1/auth/login", json={"username": "rita", "password": NEW_PASSWORD}
    )
    assert still.status_code == 200


def test_deleting_my_account_in_the_browser(
    web_hub: WebHub, signed_in: Callable[..., Page]
) -> None:
    page = signed_in("dora")
    page.goto("/settings")
    page.get_by_label("I understand that everything in my account will be deleted").check()
    page.get_by_label("Your password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("status").filter(has_text="Your account is closed")).to_be_visible()
    gone = httpx.post(
        f"{web_hub.base}/api/v1/auth/login", json={"username": "dora", "password": USER_PASSWORD}
    )
    assert gone.status_code == 401


@pytest.fixture(scope="module")
def michigan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path_factory.mktemp("michigan")) as emulator:
        emulator.add_token(PLATFORM_TOKEN, "hub-platform")
        yield emulator


def test_a_user_is_refused_every_console_page(signed_in: Callable[..., Page]) -> None:
    page = signed_in("ursula")
    expect(page.get_by_role("link", name="Console")).to_have_count(0)
    for path in CONSOLE_PAGES:
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")


def job_input(tmp: Path) -> Path:
    """A small phased, bgzipped chr20 VCF of 25 samples."""
    path = tmp / "study.chr20.vcf.gz"
    path.write_bytes(vcf.compress(panel_text(records={"20": 300}, samples=25), "bgzf"))
    return path


def test_maintenance_shows_a_banner_and_holds_jobs_until_it_ends(
    web_hub: WebHub, signed_in: Callable[..., Page], tmp_path: Path
) -> None:
    admin = signed_in("admin", ADMIN_PASSWORD)
    admin.goto("/console/settings")
    admin.get_by_label("The hub is in maintenance").check()
    admin.get_by_label("Maintenance message").fill("New disks until 15:00 UTC")
    admin.get_by_label(re.compile("^Hold")).check()
    admin.get_by_role("button", name="Save hub settings").click()
    expect(admin.get_by_role("status").filter(has_text="saved")).to_be_visible()

    user = signed_in("mona")
    banner = user.locator(".maintenance-banner")
    expect(banner).to_contain_text("New disks until 15:00 UTC")
    check_accessibility(user)
    screenshot(user, "maintenance-banner")
    token = web_hub.users["mona"]
    with web_hub.api(token) as api:
        uploaded = api.post(
            "/api/v1/files", files={"file": ("study.vcf.gz", job_input(tmp_path).read_bytes())}
        )
        assert uploaded.status_code == 201, uploaded.text
        made = api.post(
            "/api/v1/jobs",
            json={
                "name": "held study",
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [uploaded.json()["id"]],
                "build": "hg19",
                "mode": "qc_only",
            },
        )
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]

        def messages() -> list[str]:
            answer = api.get(f"/api/v1/jobs/{job_id}/status-updates")
            return [update["message"] for update in answer.json()]

        wait_for(
            lambda: "held in the hub during maintenance: New disks until 15:00 UTC" in messages()
        )
        admin.goto("/console/queue")
        expect(admin.get_by_role("row", name=re.compile("held study"))).to_contain_text(
            "held in the hub"
        )
        admin.goto("/console/settings")
        admin.get_by_label("The hub is in maintenance").uncheck()
        admin.get_by_role("button", name="Save hub settings").click()
        expect(admin.get_by_role("status").filter(has_text="saved")).to_be_visible()
        wait_for(lambda: any(m.startswith("submitting to") for m in messages()))
        api.post(f"/api/v1/jobs/{job_id}/cancel")
    user.reload()
    expect(user.locator(".maintenance-banner")).to_have_count(0)


def wait_for(condition: Callable[[], bool], *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the hub did not get there in time"
        time.sleep(0.25)


def test_a_service_registered_checked_and_synced_from_the_console(
    signed_in: Callable[..., Page], michigan: MichiganEmulator
) -> None:
    page = signed_in("admin", ADMIN_PASSWORD)
    page.goto("/console/services")
    page.get_by_role("link", name="Register a Michigan-type server").click()
    check_accessibility(page)
    page.get_by_label("Name (required)").fill("Console Michigan")
    page.get_by_label("Base URL (required)").fill(michigan.base_url)
    page.get_by_label("Credential (optional)").fill(PLATFORM_TOKEN)
    page.get_by_role("button", name="Register the service").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Console Michigan")
    assert PLATFORM_TOKEN not in page.content()

    page.get_by_role("button", name="Check now").click()
    expect(page.locator("main")).to_contain_text("healthy")
    page.get_by_role("button", name="Sync panels").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Panels synced: Console Michigan")
    expect(page.get_by_role("heading", name=re.compile(r"^Added \([1-9]"))).to_be_visible()
    check_accessibility(page)
    screenshot(page, "console-sync")
    page.goto("/console/panels?service=console-michigan")
    expect(page.locator("main")).to_contain_text("1000")  # the emulator's 1000 Genomes panels
    page.goto("/console/services")
    screenshot(page, "console-services")


def test_a_panel_imported_in_the_browser_runs_the_self_test(
    signed_in: Callable[..., Page], tmp_path: Path
) -> None:
    panel = tmp_path / "tiny.chr20.vcf.gz"
    panel.write_bytes(vcf.compress(panel_text(records={"20": 600}, samples=30, seed=11), "bgzf"))
    page = signed_in("admin", ADMIN_PASSWORD)
    page.goto("/console/panels/import")
    page.get_by_label("Panel VCF (.vcf.gz)").set_input_files(str(panel))
    page.wait_for_url(re.compile(r"/console/panels/import\?file="))
    expect(page.get_by_label("Panel file", exact=True)).not_to_have_value("")
    page.get_by_label("Display name").fill("Tiny chr20")
    page.get_by_label("Panel id (optional)").fill("tiny-chr20")
    page.get_by_label("Genome build").select_option("hg19")
    page.get_by_role("button", name="Import panel").click()
    expect(page.get_by_role("heading", name="Panel imported")).to_be_visible()
    check_accessibility(page)

    page.goto("/console/services/local/self-test")
    choice = page.locator("#self-test-panel option", has_text="Tiny chr20").get_attribute("value")
    assert choice
    page.get_by_label("Reference panel").select_option(choice)
    page.get_by_role("button", name="Run the self-test").click()
    expect(page.locator(".verdict")).to_contain_text("Passed", timeout=SLOW_MS)
    check_accessibility(page)
    screenshot(page, "console-self-test")


def test_every_console_page_passes_axe(signed_in: Callable[..., Page]) -> None:
    # Last in the module: the pages then show the jobs, services and entries made above.
    page = signed_in("admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Console").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Console")
    for path in CONSOLE_PAGES:
        page.goto(path)
        check_accessibility(page)
        screenshot(page, "console" + path.removeprefix("/console").replace("/", "-"))
