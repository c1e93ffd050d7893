"""A real `imputehub serve`: its log on stderr has one line per request that says what
happened, and its API documentation renders in a real browser cut off from every other host.

The browser is Debian's chromium (APT_TEST in the Makefile), driven by Playwright; Playwright's
own browser download is not used.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Request, Route, sync_playwright

from tests.e2e.processes import HubProcess, hub_env
from tests.support.peers import free_port

PASSWORD = "docs-and-logs-admin-password-41"
WAIT = 30.0
# `imputehub serve`'s text log: time, level, logger, then the access line itself.
ACCESS = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO +imputehub\.api: "
    r"(?P<method>[A-Z]+) (?P<path>/\S*) (?P<status>\d{3}) (?P<ms>\d+\.\d)ms "
    r"request_id=(?P<request_id>[A-Za-z0-9._:-]+)$",
    re.MULTILINE,
)


@dataclass
class Hub:
    base: str
    process: HubProcess

    def accesses(self, request_id: str) -> list[re.Match[str]]:
        return [m for m in ACCESS.finditer(self.process.stderr) if m["request_id"] == request_id]

    def wait_for_access(self, request_id: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if found := self.accesses(request_id):
                assert len(found) == 1, self.process.describe()
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no access line for {request_id}\n" + self.process.describe())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    home = tmp_path_factory.mktemp("hub")
    data = home / "data"
    env = hub_env(
        home,
        f"sqlite+aiosqlite:///{data / 'imputehub.db'}",
        IMPUTEHUB_DATA_DIR=str(data),
        IMPUTEHUB_ADMIN_USERNAME="admin",
        IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
        IMPUTEHUB_LOG_FORMAT="text",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with HubProcess("serve", "--port", str(port), env=env, cwd=home, name="hub") as process:
        process.wait_until_healthy(base)
        yield Hub(base, process)


def test_each_request_is_one_log_line_with_what_happened_and_no_secret(hub: Hub) -> None:
    health = httpx.get(f"{hub.base}/api/v1/health", headers={"X-Request-ID": "e2e-health-1"})
    assert health.status_code == 200
    line = hub.wait_for_access("e2e-health-1")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/health", "200")
    assert float(line["ms"]) > 0

    login = httpx.post(
        f"{hub.base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
    )
    assert login.status_code == 200
    token = login.json()["access_token"]
    assert hub.wait_for_access(login.headers["X-Request-ID"])["status"] == "200"

    # A browser's EventSource: the token in the query string, on a stream held open a while.
    held = 0.5
    with (
        httpx.Client(base_url=hub.base, timeout=WAIT) as client,
        client.stream("GET", f"/api/v1/events?access_token={token}") as events,
    ):
        assert events.status_code == 200
        chunks = events.iter_bytes()
        assert next(chunks).startswith(b"retry:")
        time.sleep(held)
        events_id = events.headers["X-Request-ID"]
        assert hub.accesses(events_id) == []  # still streaming: no line yet
    line = hub.wait_for_access(events_id)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/events", "200")
    assert float(line["ms"]) >= held * 1000

    guessed = httpx.get(f"{hub.base}/api/v1/auth/me?access_token=guessed-secret-Tn52")
    assert guessed.status_code == 401
    line = hub.wait_for_access(guessed.headers["X-Request-ID"])
    assert (line["path"], line["status"]) == ("/api/v1/auth/me", "401")

    output = hub.process.stdout + hub.process.stderr
    for secret in (token, PASSWORD, "guessed-secret-Tn52", "access_token="):
        assert secret not in output
    # uvicorn's own access log ("GET /path HTTP/1.1" 200) stays off: it would add the query.
    assert "HTTP/1.1" not in output


def test_the_docs_render_in_a_browser_that_reaches_no_other_host(hub: Hub) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed for this test (make deps-test installs it)")
    operations = [
        operation
        for methods in httpx.get(f"{hub.base}/openapi.json").json()["paths"].values()
        for operation in methods.values()
    ]

    elsewhere: list[str] = []
    errors: list[str] = []

    def only_the_hub(route: Route, request: Request) -> None:
        if request.url.startswith(hub.base + "/"):
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, chromium_sandbox=False)
        try:
            page = browser.new_page()  # logged out: the docs are public
            page.route("**/*", only_the_hub)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )

            page.goto(f"{hub.base}/docs")
            page.locator(".opblock").first.wait_for(timeout=WAIT * 1000)
            assert page.locator(".opblock").count() == len(operations)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/api/v1/auth/login" in [path.replace("\u200b", "") for path in paths]
            # The operations open: Swagger UI really read the OpenAPI 3.1 description.
            page.locator(".opblock-summary-path", has_text="/api/v1/auth/login").click()
            page.locator(".opblock-body").first.wait_for(timeout=WAIT * 1000)
        finally:
            browser.close()

    assert elsewhere == []
    assert errors == []


def test_a_forged_x_forwarded_for_does_not_make_a_guesser_someone_new(hub: Hub) -> None:
    # No trusted proxy is configured: each guess comes from 127.0.0.1, whatever the header
    # says, so the guesser is slowed down (uvicorn alone would have believed the header).
    answers = [
        httpx.post(
            f"{hub.base}/api/v1/auth/login",
            json={"username": "nobody-here", "password": f"guess-{n}"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        for n in range(7)
    ]
    assert [a.status_code for a in answers][:5] == [401] * 5
    assert 429 in [a.status_code for a in answers[5:]]
