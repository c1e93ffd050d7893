"""Signing in and out in a real browser, at desktop and phone width, accessibly."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from tests.e2e.web.conftest import (
    USER_PASSWORD,
    WebHub,
    check_accessibility,
    open_context,
    screenshot,
)


def test_sign_in_with_a_wrong_password_then_the_right_one_then_sign_out(
    browser: Browser, web_hub: WebHub
) -> None:
    web_hub.user("walter")
    context = open_context(browser, web_hub)
    page = context.new_page()
    page.goto("/")
    expect(page).to_have_url(f"{web_hub.base}/login?next=/")
    check_accessibility(page)
    screenshot(page, "sign-in")

    page.get_by_label("Username or e-mail address").fill("walter")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    check_accessibility(page)

    # The name stays filled in; the password field is where the cursor is.
    expect(page.get_by_label("Username or e-mail address")).to_have_value("walter")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(USER_PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{web_hub.base}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("p.notice")).to_have_text("You have signed out.")
    page.goto("/")
    expect(page).to_have_url(f"{web_hub.base}/login?next=/")
    context.close()


def test_the_page_works_at_phone_width(signed_in: Callable[..., Page]) -> None:
    page = signed_in("pia", viewport={"width": 375, "height": 740})
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 375  # nothing wider than the screen
    check_accessibility(page)


def test_the_keyboard_reaches_the_content_first_and_error_pages_are_accessible(
    signed_in: Callable[..., Page], web_hub: WebHub
) -> None:
    page = signed_in("kim")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    answer = page.goto("/jobs/no-such-job")
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    check_accessibility(page)
