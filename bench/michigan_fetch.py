"""Benchmark: fetching a finished Michigan job's results through the hub, next to curl + unzip.

One machine, one run. The project's Michigan emulator (tests/support/michigan_emulator.py, a
real HTTP server on loopback) runs in a child process, so it does not share this process's
GIL or memory with the hub. A hub runs in this process as the integration tests run one:
SQLite and local-disk storage in a temporary data dir, the real `MichiganConnector` and
`Worker(...).run_once()`, the real clock. A job is submitted to the emulator, which holds it
running until its `chr_20.zip` is ready: a zip of `--size` MB (10^6 bytes) made with
`zip -1 -P <the password the hub sent at submit>` (ZipCrypto, as the hub asks by default;
`--encryption aes`: AES-256 with pyzipper, as `aesEncryption=true` asks) holding a
`chr20.dose.vcf.gz` of random bytes (incompressible, like a real one) and a small
`chr20.info.gz`. The zip is in the page cache throughout. Then, on the same file:

  curl          `curl -s -o` of the zip's share URL at the emulator (the blob allows 100
                downloads), and `curl` + `sync` of the copy: the hub fsyncs every object it
                stores, so that is the fair baseline
  unzip         `unzip -P` of the same zip to disk, and `unzip` + `sync`. unzip 6.0 reads no
                AES, so with `--encryption aes` pyzipper (pycryptodome's C AES) stands in
  hub           the fetch step alone: from the job reaching it (its poll saw the job
                finished) to `completed`: one `run_once` that downloads each result file
                (keeping what arrives in the hub's storage in 64 MiB segments, fsynced, plus
                a local copy), decrypts the zip and stores each member with its SHA-256.
                Split by wrapping, not changing, `Download.run` and `store_zip_members`.

The hub's peak RSS growth during the fetch is this process's VmRSS sampled every 10 ms
(`ru_maxrss` too, though it mostly shows an earlier peak), to show that nothing is held
whole in memory. `--library-baseline` also times pyzipper alone decrypting the zip to disk.

The hub reads zips with libarchive (C); pure-Python ZipCrypto (zipfile, pyzipper, which the
hub used before) managed about 1 MB/s here, so the default 512 MB took about nine minutes,
against about 20 s now. A benchmark that prints figures, never a test:

    python bench/michigan_fetch.py                      # 512 MB ZipCrypto zip
    python bench/michigan_fetch.py --size 64            # ZipCrypto, quick
    python bench/michigan_fetch.py --size 512 --encryption aes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import pyzipper  # type: ignore[import-untyped]
from sqlalchemy import select

from imputehub.config import Settings
from imputehub.connectors.michigan import MichiganConnector, downloads, results
from imputehub.db.models import Base, Job, StoredFile
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the emulator and the row factories live in tests/support

from tests.support import factories  # noqa: E402
from tests.support.michigan_emulator import MichiganEmulator  # noqa: E402

TOKEN = "bench-michigan-token-42"  # noqa: S105 - a throwaway emulated server
PANEL = "apps@1000g-phase-3-v5@2.0.0"
ZIP_NAME = "chr_20.zip"
DOSE = "chr20.dose.vcf.gz"
INFO = "chr20.info.gz"
DOWNLOADS = 100  # each result file's downloads at the emulator: the baselines spend some too
BLOCK = 64 * 1024 * 1024
MB = 1_000_000
MIB = 1024 * 1024
RSS_SAMPLE_SECONDS = 0.01
T = TypeVar("T")


# ---- the emulated server, in a child process ----------------------------------------------


class BigZipEmulator(MichiganEmulator):
    """The emulator, but a finished job's `chr_20.zip` is `big_zip` (once it is set)."""

    big_zip: Path | None = None

    def _blob(self, job: Any, name: str, content: bytes) -> dict[str, Any]:
        entry = super()._blob(job, name, content)
        if name == ZIP_NAME and self.big_zip is not None:
            blob = self.blobs[(entry["hash"], name)]
            blob.path.unlink()
            blob.path = self.big_zip
            entry["size"] = f"{self.big_zip.stat().st_size} bytes"
        return entry


def build_zip(target: Path, members: list[Path], password: str, *, aes: bool) -> None:
    """The result zip as the server makes it: `zip -P` (ZipCrypto), or AES-256."""
    if aes:
        with pyzipper.AESZipFile(
            target, "w", compression=pyzipper.ZIP_DEFLATED, compresslevel=1
        ) as archive:
            archive.setpassword(password.encode())
            archive.setencryption(pyzipper.WZ_AES, nbits=256)
            for member in members:
                archive.write(member, member.name)
        return
    subprocess.run(
        ["zip", "-q", "-1", "-j", "-P", password, str(target), *map(str, members)], check=True
    )


def serve_emulator(conn: Connection, workdir: str) -> None:
    """The child process: the emulator, and answers to the parent's commands."""
    emulator = BigZipEmulator(Path(workdir))
    emulator.add_token(TOKEN, username="hub")
    emulator.download_count = DOWNLOADS
    emulator.steps_to_finish = 10**9  # jobs stay running until `release`
    emulator.start()
    conn.send(emulator.base_url)
    try:
        while True:
            command, *args = conn.recv()
            if command == "stop":
                break
            if command == "password":  # the password the hub sent with the job, once there
                accepted = emulator.accepted(args[0])
                conn.send(accepted[0]["fields"]["password"][0] if accepted else None)
            elif command == "members":  # made here: their bytes never pass the hub's memory
                folder, size = Path(args[0]), args[1]
                folder.mkdir()
                (folder / INFO).write_bytes(os.urandom(64 * 1024))
                make_random_file(folder / DOSE, size)
                conn.send(([str(folder / DOSE), str(folder / INFO)], sha256_of(folder / DOSE)))
            elif command == "build":
                target, members, password, aes = args
                build_zip(Path(target), [Path(m) for m in members], password, aes=aes)
                conn.send(Path(target).stat().st_size)
            elif command == "release":  # finish at the next status call, with the big zip
                emulator.big_zip = Path(args[0])
                emulator.steps_to_finish = 0
                conn.send(True)
            elif command == "share":  # the zip's share URL, for the baselines
                [entry] = [
                    f
                    for param in emulator.job_named(args[0]).outputs
                    for f in param["files"]
                    if f["name"] == ZIP_NAME
                ]
                conn.send(f"{emulator.base_url}/share/results/{entry['hash']}/{ZIP_NAME}")
            elif command == "downloads":
                conn.send([(d["name"], d["sent"]) for d in emulator.downloads])
    finally:
        emulator.stop()


@dataclass
class Emulator:
    conn: Connection
    process: Any
    base_url: str

    def ask(self, *command: Any) -> Any:
        self.conn.send(command)
        return self.conn.recv()


@contextlib.contextmanager
def emulator_process(workdir: Path) -> Iterator[Emulator]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve_emulator, args=(child, str(workdir)), daemon=True)
    process.start()
    try:
        yield Emulator(conn=parent, process=process, base_url=parent.recv())
    finally:
        with contextlib.suppress(OSError):
            parent.send(("stop",))
        process.join(timeout=15)
        if process.is_alive():
            process.kill()
            process.join()


# ---- inputs and baselines -----------------------------------------------------------------


def make_random_file(path: Path, size: int) -> None:
    """`size` bytes of random data (one random block written again and again: deflate's
    32 KiB window never sees the repeat, so it stays incompressible)."""
    block = os.urandom(min(BLOCK, size))
    with path.open("wb") as out:
        left = size
        while left > 0:
            left -= out.write(block[: min(len(block), left)])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def timed(run: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def run(*command: str) -> None:
    subprocess.run(command, check=True)


# pyzipper alone, in a child process of its own (its memory is not the hub's): what the
# hub's decrypting amounts to, reading 1 MiB at a time, to disk.
PYZIPPER_EXTRACT = """
import shutil, sys
from pathlib import Path
import pyzipper
zipped, password, out = sys.argv[1:]
with pyzipper.AESZipFile(zipped) as archive:
    archive.setpassword(password.encode())
    for member in archive.infolist():
        with archive.open(member) as src, (Path(out) / member.filename).open("wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
"""


@dataclass
class Baselines:
    rows: list[tuple[str, float]] = field(default_factory=list)
    download: float = 0.0  # with sync
    decrypt: float = 0.0  # with sync, the fastest decrypting tool


def baselines(url: str, zipped: Path, password: str, work: Path, args: Any) -> Baselines:
    found = Baselines()
    copy = work / "curl.zip"
    curl_s, _ = timed(lambda: run("curl", "-s", "-f", "-o", str(copy), url))
    if copy.stat().st_size != zipped.stat().st_size:
        sys.exit(f"curl fetched {copy.stat().st_size} bytes, not {zipped.stat().st_size}")
    copy.unlink()

    def curl_sync() -> None:
        run("curl", "-s", "-f", "-o", str(copy), url)
        run("sync", str(copy))

    curl_sync_s, _ = timed(curl_sync)
    copy.unlink()
    found.rows += [("curl -o (download only)", curl_s), ("curl -o + sync", curl_sync_s)]
    found.download = curl_sync_s

    out = work / "extracted"
    decrypts: list[float] = []
    if args.encryption == "zipcrypto":
        out.mkdir()
        unzip_s, _ = timed(lambda: run("unzip", "-q", "-P", password, str(zipped), "-d", str(out)))
        shutil.rmtree(out)
        out.mkdir()

        def unzip_sync() -> None:
            run("unzip", "-q", "-P", password, str(zipped), "-d", str(out))
            run("sync", *(str(p) for p in out.iterdir()))

        unzip_sync_s, _ = timed(unzip_sync)
        shutil.rmtree(out)
        found.rows += [("unzip -P (decrypt only)", unzip_s), ("unzip -P + sync", unzip_sync_s)]
        decrypts.append(unzip_sync_s)
    if args.encryption == "aes" or args.library_baseline:
        out.mkdir()

        def library() -> None:
            run(sys.executable, "-c", PYZIPPER_EXTRACT, str(zipped), password, str(out))
            run("sync", *(str(p) for p in out.iterdir()))

        library_s, _ = timed(library)
        shutil.rmtree(out)
        found.rows.append(("pyzipper to disk + sync", library_s))
        decrypts.append(library_s)
    found.decrypt = min(decrypts)
    return found


# ---- the hub ------------------------------------------------------------------------------


class Spans:
    """Start and end of the connector's download and zip-storing calls (wall clock), by
    wrapping them in place; what they do is unchanged."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, float]] = []  # (what, file, start, end)
        self._undo: list[Callable[[], None]] = []

    def _wrap(self, owner: Any, attr: str, what: str, name_of: Callable[..., str]) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        async def wrapper(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*a, **kw)
            finally:
                self.calls.append((what, name_of(*a, **kw), start, time.perf_counter()))

        setattr(owner, attr, wrapper)
        self._undo.append(lambda: setattr(owner, attr, original))

    @contextlib.contextmanager
    def watching(self) -> Iterator[Spans]:
        self._wrap(downloads.Download, "run", "download", lambda d: d.file.name)
        self._wrap(results, "store_zip_members", "decrypt", lambda _p, name, *_: name)
        try:
            yield self
        finally:
            for undo in reversed(self._undo):
                undo()

    def total(self, what: str, name: str | None = None) -> float:
        return sum(
            end - start
            for w, n, start, end in self.calls
            if w == what and (name is None or n == name)
        )


def vm_rss() -> int:
    """This process's resident set size now, in bytes (Linux)."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def max_rss() -> int:
    """This process's peak resident set size so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssSampler:
    def __init__(self) -> None:
        self.start = vm_rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, vm_rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, vm_rss())


@dataclass
class HubFetch:
    seconds: float
    spans: Spans
    rss_start: int
    rss_peak: int
    maxrss_before: int
    maxrss_after: int
    files: dict[str, StoredFile]


async def load_job(runtime: Runtime, job_id: str) -> Job:
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def until(
    runtime: Runtime, worker: Worker, job_id: str, done: Callable[[Job], Awaitable[bool]]
) -> Job:
    """Worker rounds until `done(job)`; a job that ends otherwise ends the benchmark."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await worker.run_once()
        job = await load_job(runtime, job_id)
        if await done(job):
            return job
        if job.status in ("failed", "cancelled"):
            sys.exit(f"the job ended {job.status}: {job.error_message}")
        await asyncio.sleep(0.02)
    sys.exit(f"the job is still {job.status} ({job.next_step}): {job.error_log}")


async def hub_run(
    emulator: Emulator, work: Path, members: list[Path], args: Any
) -> tuple[int, Baselines, HubFetch, list[tuple[str, int]]]:
    settings = Settings.from_environ(
        {},  # nothing from the environment or a .env file: a fresh hub
        data_dir=work / "hub",
        poll_interval_seconds=0.05,
        worker_poll_interval=0.05,
        retry_base_seconds=0.05,
    )
    runtime = build_runtime(settings, connectors={"michigan": MichiganConnector()})
    try:
        async with runtime.db.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        user = await factories.make_user(runtime, email="bench@example.org")
        service = await factories.make_service(
            runtime,
            slug="michigan",
            api_type="michigan",
            base_url=emulator.base_url,
            credential_encrypted=runtime.vault.encrypt(TOKEN),
            api_config={"aes_encryption": True} if args.encryption == "aes" else {},
        )
        panel = await factories.make_panel(
            runtime, service, slug="1000g", panel_id=PANEL, populations=["eur"]
        )
        stored = await factories.make_file(runtime, user.id)
        job = await factories.make_job(
            runtime, user_id=user.id, service=service, panel=panel, files=[stored]
        )
        worker = Worker(runtime)

        async def submitted(_job: Job) -> bool:
            return emulator.ask("password", job.id) is not None

        await until(runtime, worker, job.id, submitted)
        password: str = emulator.ask("password", job.id)
        zipped = work / "emulator" / "big.zip"
        zip_size: int = await asyncio.to_thread(
            emulator.ask,
            "build",
            str(zipped),
            [str(m) for m in members],
            password,
            args.encryption == "aes",
        )
        emulator.ask("release", str(zipped))

        async def fetch_next(found: Job) -> bool:
            return found.next_step == "fetch"

        await until(runtime, worker, job.id, fetch_next)
        url: str = emulator.ask("share", job.id)
        base = await asyncio.to_thread(baselines, url, zipped, password, work, args)
        before = emulator.ask("downloads")

        spans = Spans()
        maxrss_before = max_rss()
        with spans.watching(), RssSampler() as rss:
            start = time.perf_counter()
            await worker.run_once()
            seconds = time.perf_counter() - start
        done = await load_job(runtime, job.id)
        if done.status != "completed":
            sys.exit(f"the fetch step left the job {done.status}: {done.error_log}")
        async with runtime.db.session() as session:
            rows = await session.scalars(select(StoredFile).where(StoredFile.job_id == job.id))
            files = {row.filename: row for row in rows}
        after = emulator.ask("downloads")
        fetch = HubFetch(
            seconds=seconds,
            spans=spans,
            rss_start=rss.start,
            rss_peak=rss.peak,
            maxrss_before=maxrss_before,
            maxrss_after=max_rss(),
            files=files,
        )
        return zip_size, base, fetch, after[len(before) :]
    finally:
        await runtime.close()


# ---- report -------------------------------------------------------------------------------


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / MB:10.1f}" if seconds > 0 else f"{'-':>10}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=float, default=512, help="the result zip's size in MB (default 512)"
    )
    parser.add_argument(
        "--encryption",
        choices=["zipcrypto", "aes"],
        default="zipcrypto",
        help="how the server encrypts the zip (default zipcrypto, the hub's default)",
    )
    parser.add_argument(
        "--library-baseline",
        action="store_true",
        help="also time pyzipper alone decrypting the zip (always on with --encryption aes)",
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    size = int(args.size * MB)
    for tool in ("zip", "unzip", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")

    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        with emulator_process(work / "emulator") as emulator:
            members, dose_sha256 = emulator.ask(
                "members", str(work / "members"), max(size - 64 * 1024 - 512, MIB)
            )
            zip_size, base, fetch, spent = asyncio.run(
                hub_run(emulator, work, [Path(m) for m in members], args)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    kind = "ZipCrypto (zip -1 -P)" if args.encryption == "zipcrypto" else "AES-256 (pyzipper)"
    print(
        f"{ZIP_NAME}: {zip_size / MB:.1f} MB, {kind}: {DOSE} (random bytes) + {INFO}; "
        "in the page cache"
    )
    print(f"\n{'step':<56}{'seconds':>9}{'MB/s':>11}")
    rows = [(f"baseline: {name}", seconds) for name, seconds in base.rows]
    baseline = base.download + base.decrypt
    rows.append(("baseline: download + decrypt, both + sync", baseline))
    download = fetch.spans.total("download", ZIP_NAME)
    decrypt = fetch.spans.total("decrypt", ZIP_NAME)
    rows += [
        ("hub: fetch step (reaching it -> completed)", fetch.seconds),
        ("  download: segments in storage + local copy", download),
        ("  decrypt: members into storage with SHA-256", decrypt),
        ("  the rest (2 small files, marks, database)", fetch.seconds - download - decrypt),
    ]
    for name, seconds in rows:
        print(f"{name:<56}{seconds:9.2f}{rate(zip_size, seconds)}")
    overhead = fetch.seconds - baseline
    print(
        f"\nhub over (download + decrypt, + sync): {fetch.seconds / baseline:.2f}x the time "
        f"(+{overhead:.2f} s)"
    )
    if download > 0 and decrypt > 0:
        print(
            f"  download {download / base.download:.2f}x curl + sync; "
            f"decrypt {decrypt / base.decrypt:.2f}x the fastest decrypt + sync"
        )
    print(
        f"hub peak RSS growth during the fetch: {(fetch.rss_peak - fetch.rss_start) / MIB:.0f} MiB "
        f"(VmRSS {fetch.rss_start / MIB:.0f} -> peak {fetch.rss_peak / MIB:.0f} MiB, "
        f"sampled every {RSS_SAMPLE_SECONDS * 1000:.0f} ms; ru_maxrss "
        f"{fetch.maxrss_before / MIB:.0f} -> {fetch.maxrss_after / MIB:.0f} MiB)"
    )
    zips = [sent for name, sent in spent if name == ZIP_NAME]
    stored = fetch.files.get(DOSE)
    same = stored is not None and stored.sha256 == dose_sha256
    print(
        f"hub downloads of {ZIP_NAME}: {len(zips)} ({sum(zips) / MB:.1f} MB sent); "
        f"stored {DOSE} SHA-256 {'matches' if same else 'DIFFERS FROM'} the zipped file"
    )


if __name__ == "__main__":
    main()
