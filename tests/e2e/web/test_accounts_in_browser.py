"""Getting, recovering and closing an account in a real browser, against a real `serve`
whose mails go to a real SMTP server on loopback (aiosmtpd): sign-up in each mode, a reset
link used once, reused and expired, deleting your own account."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.web.conftest import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    WebHub,
    check_accessibility,
    open_context,
    screenshot,
    sign_in,
)
from tests.support.smtp_server import Received, SmtpServer, smtp_server

NEW_PASSWORD = "a new password typed in the browser 7"


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


def visitor(browser: Browser, web_hub: WebHub) -> Page:
    return open_context(browser, web_hub).new_page()


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
    browser: Browser,
    web_hub: WebHub,
    smtp: SmtpServer,
    signed_in: Callable[..., Page],
) -> None:
    page = visitor(browser, web_hub)
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
    other = visitor(browser, web_hub)
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
    browser: Browser, web_hub: WebHub, smtp: SmtpServer
) -> None:
    web_hub.user("rita")
    page = visitor(browser, web_hub)
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
    again = visitor(browser, web_hub)
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
