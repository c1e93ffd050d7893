"""The real `imputehub` command line (`cli.main.run`) against the real app on loopback.

The app is served in the test's event loop; the command runs in a thread (it is
synchronous), as the user `alice` whose token is in IMPUTEHUB_TOKEN.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from imputehub.cli.main import run
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.runtime import Runtime, build_runtime
from tests.support.api import Actor
from tests.support.fake_connector import FakeConnector

# A hang fails the test instead of blocking it; generous, as a loaded CI machine once took
# over 20 s for a federated submit (check, upload, create) that takes 1.3 s alone.
WAIT = 60.0


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


class Cli:
    """Runs commands and reads what they print (stdout and stderr, as the user sees them)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.out = ""  # what a running command printed so far (see `printed`)

    async def __call__(self, *args: str) -> Done:
        self.capsys.readouterr()
        code = await asyncio.wait_for(asyncio.to_thread(run, list(args)), WAIT)
        out, err = self.capsys.readouterr()
        return Done(code, out, err)

    def start(self, *args: str) -> asyncio.Task[int]:
        """A command that runs while the test goes on (e.g. `jobs watch`)."""
        self.capsys.readouterr()
        self.out = ""
        return asyncio.create_task(asyncio.to_thread(run, list(args)))

    async def printed(self, condition: Callable[[str], bool], what: str) -> str:
        """Wait until the running command's output meets `condition`; the output so far."""
        async with asyncio.timeout(WAIT):
            while not condition(self.out):
                await asyncio.sleep(0.02)
                self.out += self.capsys.readouterr().out
        return self.out

    async def finish(self, task: asyncio.Task[int]) -> Done:
        async with asyncio.timeout(WAIT):
            code = await task
        out, err = self.capsys.readouterr()
        self.out += out
        return Done(code, self.out, err)


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"events_poll_seconds": 0.05, "events_keepalive_seconds": 0.3}
    )


@pytest.fixture
async def runtime(  # type: ignore[no-untyped-def]
    live_settings: Settings, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Runtime]:
    fake = FakeConnector(tmp_path / "fake.json")
    rt = build_runtime(live_settings, clock=clock, connectors={"michigan": fake})
    yield rt
    await rt.close()


@pytest.fixture
def cli(
    alice: Actor,
    hub_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """The command line of `alice`, talking to the hub, in a working dir of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(tmp_path / "client"))
    monkeypatch.setenv("IMPUTEHUB_URL", hub_url)
    monkeypatch.setenv("IMPUTEHUB_TOKEN", alice.headers["Authorization"].removeprefix("Bearer "))
    monkeypatch.setenv("COLUMNS", "200")  # tables are not wrapped
    return Cli(capsys)
