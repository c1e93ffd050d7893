"""The pages in a real browser: Debian's chromium driven by Playwright, against a real
`imputehub serve` (SQLite, local disk, the local engine and its demo panel).

One hub per test module (fixture `web_hub`); a fresh browser context per user (`signed_in`).
`check_accessibility` runs axe-core (vendored from npm, tests/support/vendor) on a page and
fails on any serious or critical violation. With IMPUTEHUB_SCREENSHOT_DIR set (`make
screenshots`), `screenshot` saves the README's pictures there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.processes import HubProcess, local_engine_env
from tests.support.peers import free_port

ADMIN_PASSWORD = "web-pages admin password 52"
USER_PASSWORD = "web-pages user password 52"
WAIT_MS = 30_000
AXE = Path(__file__).parents[2] / "support" / "vendor" / "axe-core" / "axe.min.js"


@dataclass
class WebHub:
    base: str
    process: HubProcess
    home: Path
    admin_token: str
    users: dict[str, str] = field(default_factory=dict)  # username -> bearer token

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def user(self, username: str) -> str:
        """A user with USER_PASSWORD (made once per hub); their bearer token."""
        if username not in self.users:
            with self.api() as admin:
                made = admin.post(
                    "/api/v1/users",
                    json={
                        "username": username,
                        "password": USER_PASSWORD,
                        "email": f"{username}@example.org",
                    },
                )
                assert made.status_code == 201, made.text
            login = httpx.post(
                f"{self.base}/api/v1/auth/login",
                json={"username": username, "password": USER_PASSWORD},
            )
            assert login.status_code == 200, login.text
            self.users[username] = login.json()["access_token"]
        return self.users[username]


@pytest.fixture(scope="module")
def web_hub_env() -> dict[str, str]:
    """More environment for the module's hub (a module overrides this, e.g. with SMTP)."""
    return {}


@pytest.fixture(scope="module")
def web_hub(
    tmp_path_factory: pytest.TempPathFactory, web_hub_env: dict[str, str]
) -> Iterator[WebHub]:
    home = tmp_path_factory.mktemp("web-hub")
    env = local_engine_env(
        home,
        f"sqlite+aiosqlite:///{home / 'data' / 'imputehub.db'}",
        ADMIN_PASSWORD,
        IMPUTEHUB_ADMIN_USERNAME="admin",
        IMPUTEHUB_LOG_FORMAT="text",
        # The browser tests sign in many times from one address.
        IMPUTEHUB_RATE_LIMIT_LOGIN="1000/minute",
        **web_hub_env,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with HubProcess("serve", "--port", str(port), env=env, cwd=home, name="hub") as process:
        process.wait_until_healthy(base)
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield WebHub(base, process, home, login.json()["access_token"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed for the browser tests (make deps-test)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, chromium_sandbox=False)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class BrowserErrors:
    """Script errors and failed requests the page met; a test ends asserting there were none
    it did not expect."""

    messages: list[str] = field(default_factory=list)


def open_context(browser: Browser, web_hub: WebHub, **options: Any) -> BrowserContext:
    context = browser.new_context(base_url=web_hub.base, **options)
    context.set_default_timeout(WAIT_MS)
    # The hub works offline: a page that asks any other host for anything fails the test.
    context.route(
        "**/*",
        lambda route, request: (
            route.continue_() if request.url.startswith(web_hub.base + "/") else route.abort()
        ),
    )
    return context


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username or e-mail address").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def signed_in(browser: Browser, web_hub: WebHub) -> Iterator[Callable[..., Page]]:
    """signed_in("alice") -> a page of a new browser context, signed in as alice (made if
    needed); signed_in("admin", ADMIN_PASSWORD) for the admin. Script errors fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_page(username: str, password: str = USER_PASSWORD, **options: Any) -> Page:
        if username != "admin":
            web_hub.user(username)
        context = open_context(browser, web_hub, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{username}: {error}"))
        sign_in(page, username, password)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], errors


def check_accessibility(page: Page) -> None:
    """axe-core on the page as it is: no serious or critical violation (WCAG 2 A/AA rules)."""
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            });
            return result.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => `${v.id} (${v.impact}): ${v.help} at ` +
                     v.nodes.map(n => n.target.join(" ")).join(", "));
        }"""
    )
    assert found == [], f"{page.url}: " + "\n".join(found)


def screenshot(page: Page, name: str) -> None:
    """Save the page for the README when IMPUTEHUB_SCREENSHOT_DIR is set (make screenshots)."""
    folder = os.environ.get("IMPUTEHUB_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
