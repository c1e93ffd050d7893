"""Benchmark: a resumable upload to a real `imputehub serve` over loopback, next to `cp`.

Makes a file of random bytes (default 2 GiB; written from one random block, which is quick),
starts `imputehub serve` on a fresh data dir on the same disk, and in one run times:

  cp          `cp` of the file on the same disk (and `cp` + `sync` of the copy: the hub
              fsyncs every part it stores, so that is the fair baseline)
  checksum    the client's first pass over the file (its SHA-256, sent at init)
  parts       the parts, N at a time, through the CLI's own transfer code (PartSender)
  complete    the hub joins the parts and streams the whole file once (size, SHA-256,
              VCF check). Random bytes are not a VCF, so the hub answers 422 invalid_vcf
              after that full pass: the time is still the cost of a real completion.

A benchmark that prints figures, never a test:

    python bench/upload.py                    # 2 GiB, 4 parallel parts of 8 MiB
    python bench/upload.py --size 200M --parallel 8 --part-size 16M
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from alembic import command
from sqlalchemy import create_engine

from imputehub.cli.client import HubClient, HubError
from imputehub.cli.transfer import PartPlan, PartSender, hash_range
from imputehub.cli.upload import parse_size
from imputehub.db import migrate
from imputehub.db.models import Base

PASSWORD = "benchmark password 0123"  # noqa: S105 - a throwaway local hub
BLOCK = 64 * 1024 * 1024
T = TypeVar("T")


@dataclass
class Hub:
    process: subprocess.Popen[bytes]
    url: str
    token: str


def make_random_file(path: Path, size: int) -> None:
    """`size` bytes of random data (one random block written again and again)."""
    block = os.urandom(min(BLOCK, size))
    with path.open("wb") as out:
        left = size
        while left > 0:
            left -= out.write(block[: min(len(block), left)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare_database(data_dir: Path) -> None:
    """The schema built from the models and stamped as migrated, so `serve` finds it current
    whether or not the newest tables have their migration yet."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "imputehub.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(migrate.alembic_config(f"sqlite+aiosqlite:///{path}"), "head")


@contextmanager
def running_hub(data_dir: Path, log: Path) -> Iterator[Hub]:
    """`imputehub serve` on a fresh data dir (SQLite, local storage), logged in as admin."""
    prepare_database(data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
    env.update(
        IMPUTEHUB_DATA_DIR=str(data_dir),
        IMPUTEHUB_ADMIN_USERNAME="admin",
        IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
        IMPUTEHUB_LOG_LEVEL="WARNING",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "imputehub", "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the hub exited early; see {log}")
            try:
                httpx.get(f"{url}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the hub did not start; see {log}") from None
                time.sleep(0.1)
        login = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        )
        login.raise_for_status()
        yield Hub(process=process, url=url, token=login.json()["access_token"])
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def timed(run: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


@dataclass
class UploadTimes:
    checksum: float
    parts: float
    complete: float
    outcome: str
    part_count: int


def upload(hub: Hub, path: Path, *, parallel: int, part_size: int) -> UploadTimes:
    """The CLI's steps, timed one by one: checksum, init, parts, complete."""
    size = path.stat().st_size
    checksum_s, sha256 = timed(lambda: hash_range(path, 0, size))
    with HubClient(hub.url, hub.token, timeout=3600) as client:
        plan_body: dict[str, Any] = client.post(
            "/uploads/init",
            json={"filename": path.name, "size": size, "part_size": part_size, "sha256": sha256},
        )
        plan = PartPlan(
            upload_id=plan_body["upload_id"],
            path=path,
            size=size,
            part_size=plan_body["part_size"],
        )

        async def send() -> None:
            async with PartSender(hub.url, hub.token, parallel=parallel) as sender:
                await sender.send(plan, range(plan_body["part_count"]), lambda _n: None)

        parts_s, _ = timed(lambda: asyncio.run(send()))

        def finish() -> str:
            try:
                client.post(f"/uploads/{plan.upload_id}/complete")
            except HubError as exc:
                return f"{exc.status} {exc.code}"
            return "201 file recorded"

        complete_s, outcome = timed(finish)
    return UploadTimes(
        checksum=checksum_s,
        parts=parts_s,
        complete=complete_s,
        outcome=outcome,
        part_count=plan_body["part_count"],
    )


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:10.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G, 200M (default 2G)")
    parser.add_argument("--parallel", type=int, default=4, help="parts in flight (default 4)")
    parser.add_argument("--part-size", default="8M", help="bytes per part (default 8M)")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    size = parse_size(args.size, "--size")
    part_size = parse_size(args.part_size, "--part-size")

    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        source = work / "random.bin"
        make_random_file(source, size)
        copy = work / "copy.bin"
        cp_s, _ = timed(lambda: subprocess.run(["cp", str(source), str(copy)], check=True))
        copy.unlink()
        cp_sync_s, _ = timed(
            lambda: (
                subprocess.run(["cp", str(source), str(copy)], check=True),
                subprocess.run(["sync", str(copy)], check=True),
            )
        )
        copy.unlink()
        with running_hub(work / "hub", work / "hub.log") as hub:
            times = upload(hub, source, parallel=args.parallel, part_size=part_size)

        print(f"file: {size / 1e6:.0f} MB of random bytes in {work} (in the page cache)")
        print(f"upload: {times.part_count} parts of {part_size} bytes, {args.parallel} at a time")
        print(f"\n{'step':<44}{'seconds':>9}{'MB/s':>11}")
        rows = [
            ("cp (same disk)", cp_s),
            ("cp + sync (same disk)", cp_sync_s),
            ("client checksum (SHA-256 pass)", times.checksum),
            (f"hub: parts over loopback, {args.parallel} parallel", times.parts),
            ("hub: complete (join + SHA-256 + VCF check)", times.complete),
            ("hub: parts + complete", times.parts + times.complete),
        ]
        for name, seconds in rows:
            print(f"{name:<44}{seconds:9.2f}{rate(size, seconds)}")
        print(f"\nparts / cp+sync: {times.parts / cp_sync_s:.2f}x the time")
        print(
            f"complete answered {times.outcome} "
            "(random bytes are not a VCF: expected 422 invalid_vcf after the full pass)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
