"""The README's quickstart and both walk-throughs, run exactly as printed.

A fresh copy of the repository (what `git clone` gives, with this checkout's changes), no
virtualenv, a new home directory; `make run` with its defaults (relative `./var`, port
8000, the generated admin password read from its output); then the README's own shell
blocks — taken from README.md, not copied here — run by bash in a terminal in that
directory, answering the password prompts as a person would. Whenever the README's
quickstart changes, this test runs the new text.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from imputehub.engine.accuracy import dosage_r2
from tests.support.terminal import Transcript, run_in_terminal

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HUB = "http://127.0.0.1:8000"
PASSWORD_LINE = re.compile(r"password: (\S+)")
RESULTS = {
    "chr20.dose.vcf.gz",
    "chr20.dose.vcf.gz.tbi",
    "chr20.info.gz",
    "qc_report.txt",
    "qc_report.html",
    "snps-excluded.txt",
    "snps-typed-only.txt",
}
STEPS = ("Input Validation", "Quality Control", "Phasing and Imputation", "Summary")
# Installing into a fresh .venv, migrating and simulating the demo panel on a busy machine.
START_TIMEOUT = 300.0

pytestmark = pytest.mark.timeout(900)


def sh_blocks(heading: str) -> list[str]:
    """The ```sh blocks of the README section under `heading` (until the next heading)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    following = re.search(r"\n#{1,3} ", text[start + 1 :])
    section = text[start : start + 1 + following.start()] if following else text[start:]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def fresh_copy(target: Path) -> Path:
    """The files a clone of this checkout holds (tracked and new, not ignored), copied."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():  # a file deleted in this checkout is gone from the clone too
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def newcomer_env(home: Path) -> dict[str, str]:
    """A login shell's environment: none of the suite's venv, make or IMPUTEHUB_ settings."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "XDG_CONFIG_HOME")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("IMPUTEHUB_", "PYTEST_", "COV_")) and key not in dropped
    }
    # `make test` runs the suite with its .venv/bin first on PATH; a newcomer has none.
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.endswith("/.venv/bin")]
    env.update(PATH=os.pathsep.join(path), TERM="xterm")
    # The machine's package cache (where the Makefile's `python3 -m uv` keeps it), as a
    # newcomer's second `make run` would have it: else every run downloads the dependencies.
    uv_cache = subprocess.run(
        ["python3", "-m", "uv", "cache", "dir"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    env.update(HOME=str(home), UV_CACHE_DIR=uv_cache)
    return env


class MakeRun:
    """`make run` in its own process group, its output in a file."""

    def __init__(self, clone: Path, env: dict[str, str]) -> None:
        self.log = clone.parent / "make-run.log"
        self.clone = clone
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def start(self) -> str:
        """Start it; the generated admin password once the hub answers."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["make", "run"],
                cwd=self.clone,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while f"imputehub is running at {HUB}" not in self.output:
            assert self.process.poll() is None, f"make run exited:\n{self.output}"
            assert time.monotonic() < deadline, f"make run did not start:\n{self.output}"
            time.sleep(0.5)
        passwords = PASSWORD_LINE.findall(self.output)
        assert len(passwords) == 1, self.output
        return passwords[0]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C in make run's terminal
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def port_8000_is_free() -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8000))
        except OSError:
            pytest.fail("port 8000 is taken on this machine: the README's quickstart needs it")


@pytest.fixture
def running_hub(tmp_path: Path, port_8000_is_free: None) -> Iterator[tuple[Path, dict, str]]:
    clone = fresh_copy(tmp_path / "imputehub")
    home = tmp_path / "home"
    home.mkdir()
    env = newcomer_env(home)
    quickstart = sh_blocks("## Quickstart")[0]
    assert re.search(r"^make run\b", quickstart, flags=re.MULTILINE), quickstart
    hub = MakeRun(clone, env)
    try:
        password = hub.start()
        yield clone, env, password
    finally:
        hub.stop()
    # Relative `./var` meant the clone's var/, wherever the processes ran.
    assert (clone / "var" / "imputehub.db").is_file(), hub.output
    assert "Traceback" not in hub.output, hub.output


def run_block(block: str, clone: Path, env: dict[str, str], prompt: str, password: str) -> str:
    done: Transcript = run_in_terminal(
        ["bash", "-e", "-o", "pipefail", "-c", block],
        cwd=clone,
        env=env,
        answers=[(prompt, password)],
    )
    assert done.status == 0, f"{block}\n--- terminal ---\n{done.text}"
    assert "Traceback" not in done.text, done.text
    assert password not in done.text  # hidden prompts stay hidden
    return done.text


def test_the_readme_quickstart_and_walk_throughs_as_written(
    running_hub: tuple[Path, dict[str, str], str],
) -> None:
    clone, env, password = running_hub
    cli_block, rest_block = sh_blocks(
        "### First walk-through: impute the demo targets on the hub's own engine"
    )[:2]

    # By the command line: login prompts for the password make run printed.
    shown = run_block(cli_block, clone, env, "Password: ", password)
    assert re.search(r"local\s.*Local engine \(Beagle 5\.4\).*healthy", shown), shown
    assert re.search(r"demo\s.*Demo panel", shown), shown
    for step in STEPS:  # submit shows the steps as it follows the job
        assert step in shown, shown
    assert {p.name for p in (clone / "results").iterdir()} == RESULTS
    score = re.search(r"dosage r² (\d\.\d+) over (\d+) sites, 50 samples", shown)
    assert score is not None, shown
    assert float(score.group(1)) >= 0.95  # the README: r² ≈ 0.97
    assert dosage_r2(
        clone / "results" / "chr20.dose.vcf.gz", clone / "demo" / "demo.truth.vcf.gz"
    ) == pytest.approx(float(score.group(1)), abs=5e-4)

    # By the REST API: curl and jq lines as printed, the password typed at `read`.
    shown = run_block(rest_block, clone, env, "admin password: ", password)
    assert '"status":"completed"' in shown, shown
    assert "Phasing and Imputation" in shown, shown
    assert {p.name for p in (clone / "api-results").iterdir()} == RESULTS
    truth = clone / "demo" / "demo.truth.vcf.gz"
    assert dosage_r2(clone / "api-results" / "chr20.dose.vcf.gz", truth) >= 0.95

    # In the browser, as the README's numbered steps say: sign in, New job with the demo
    # targets, panel demo, phasing beagle, a name, Submit job; the job page goes to completed
    # by itself and lists the results with their SHA-256.
    in_the_browser(clone / "demo" / "demo.targets.vcf.gz", password)


def in_the_browser(targets: Path, password: str) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (make deps-test installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, chromium_sandbox=False)
        try:
            page = browser.new_page(base_url=HUB)
            page.set_default_timeout(60_000)
            page.goto("/")
            page.get_by_label("Username or e-mail address").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
            # The two jobs of the walk-throughs above are there already.
            expect(page.locator("main")).to_contain_text("demo")

            page.get_by_role("navigation", name="Main").get_by_role("link", name="New job").click()
            page.get_by_label("Choose VCF files").set_input_files(targets)
            card = page.locator("li.file-card", has_text=targets.name)
            expect(card.get_by_text("Arrived and checked")).to_be_visible()
            expect(card.locator(".fit.fits")).to_contain_text("Demo panel")
            page.get_by_role("radio", name=re.compile("demo", re.IGNORECASE)).check()
            page.get_by_label("Phasing").select_option("beagle")
            page.get_by_label("Job name").fill("demo in the browser")
            expect(page.locator("#cli-command")).to_contain_text("imputehub submit")
            page.get_by_role("button", name="Submit job").click()

            page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
            expect(page.locator("#job-status")).to_have_text("completed", timeout=300_000)
            results = page.locator("main")
            for name in RESULTS:
                expect(results).to_contain_text(name)
            expect(results).to_contain_text("SHA-256")
        finally:
            browser.close()
