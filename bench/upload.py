"""Benchmark: resumable uploads to a real `imputehub serve` over loopback, next to `cp` + `sync`.

Makes a file of random bytes (default 2 GiB; written from one random block, which is quick),
and in one run measures, on the same disk:

  cp + sync   `cp` of the file and `sync` of the copy: the hub fsyncs every part it stores,
              so that is the fair baseline (plain `cp` is printed too)
  for each --parallel value (default 4 and 8), a fresh `imputehub serve` (SQLite, local
  storage) and the CLI's own transfer code (PartSender):
    checksum  the client's first pass over the file (its SHA-256, sent at init)
    parts     the parts, N at a time (each hashed by the client, then sent and checked)
    complete  the hub joins the parts and streams the whole file once (size, SHA-256,
              VCF check). Random bytes are not a VCF, so the hub answers 422 invalid_vcf
              after that full pass: the time is still the cost of a real completion.
    peak RSS  the server's peak resident memory during the upload (VmHWM, reset after
              start-up)

`--end-to-end` runs one upload only (the first --parallel value) and prints its time from
the first byte sent to the hub's answer (parts + join + checks) with the server's peak RSS:
the platform's promised size is `--size 10G --end-to-end`. The work directory (on the
same disk as --dir) needs about three times --size free while the parts are joined.

A benchmark that prints figures, never a test:

    python bench/upload.py                           # 2 GiB, 4 and 8 parallel 8 MiB parts
    python bench/upload.py --size 10G --end-to-end   # the largest file the hub promises
    python bench/upload.py --size 256M --parallel 4  # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

# Run as `python bench/upload.py`: the helpers next to it are importable.
from _hub import free_port, hub_env, login, prepare_hub_database, started

from imputehub.cli.client import HubClient, HubError
from imputehub.cli.transfer import PartPlan, PartSender, hash_range
from imputehub.cli.upload import parse_size

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


@contextmanager
def running_hub(data_dir: Path, log: Path) -> Iterator[Hub]:
    """`imputehub serve` on a fresh data dir (SQLite, local storage), logged in as admin."""
    prepare_hub_database(data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "imputehub", "serve", "--port", str(port)]
    with started(cmd, env=hub_env(data_dir), log=log, probe=f"{url}/api/v1/health") as process:
        yield Hub(process=process, url=url, token=login(url))


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
    client_cpu: float  # the client's CPU time for the parts (it runs on the same cores)


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

        client_cpu = time.process_time()
        parts_s, _ = timed(lambda: asyncio.run(send()))
        client_cpu = time.process_time() - client_cpu

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
        client_cpu=client_cpu,
    )


def memory_kib(pid: int, field: str) -> int:
    """A `VmHWM`/`VmRSS` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status (Linux only)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    """Start VmHWM afresh (Linux: `5` to clear_refs), so start-up work (migrations,
    imports) does not hide what the upload itself needs."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Run:
    parallel: int
    times: UploadTimes
    idle_mib: float  # the server's peak before the upload
    peak_mib: float  # its peak during the upload
    cpu_s: float  # the server's CPU time for the whole upload (less noisy than the clock)


def measured_upload(work: Path, source: Path, *, parallel: int, part_size: int) -> Run:
    """One upload to a fresh hub, with the hub's peak memory while it ran."""
    hub_dir = work / f"hub-{parallel}"
    try:
        with running_hub(hub_dir, work / f"hub-{parallel}.log") as hub:
            pid = hub.process.pid
            idle = memory_kib(pid, "VmHWM")
            reset_peak(pid)
            cpu_before = cpu_seconds(pid)
            times = upload(hub, source, parallel=parallel, part_size=part_size)
            cpu = cpu_seconds(pid) - cpu_before
            peak = memory_kib(pid, "VmHWM")
    finally:
        shutil.rmtree(hub_dir, ignore_errors=True)  # the disk space for the next run
    return Run(
        parallel=parallel, times=times, idle_mib=idle / 1024, peak_mib=peak / 1024, cpu_s=cpu
    )


def copy_baseline(source: Path, copy: Path) -> tuple[float, float]:
    """Seconds for `cp`, then for `cp` + `sync` of the copy (each on a fresh copy)."""
    cp_s, _ = timed(lambda: subprocess.run(["cp", str(source), str(copy)], check=True))
    copy.unlink()
    cp_sync_s, _ = timed(
        lambda: (
            subprocess.run(["cp", str(source), str(copy)], check=True),
            subprocess.run(["sync", str(copy)], check=True),
        )
    )
    copy.unlink()
    return cp_s, cp_sync_s


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:10.1f}"


def size_option(text: str) -> int:
    """`2G`, `2GiB`, `256M`, `1048576`: binary units, as the CLI's own --part-size."""
    cleaned = text.strip()
    for suffix in ("iB", "ib", "B", "b"):
        if cleaned.endswith(suffix) and cleaned[: -len(suffix)][-1:].isalpha():
            cleaned = cleaned[: -len(suffix)]
            break
    return parse_size(cleaned, "--size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G, 10GiB, 256M (default 2G)")
    parser.add_argument(
        "--parallel", default="4,8", help="parts in flight; comma-separated runs (default 4,8)"
    )
    parser.add_argument("--part-size", default="8M", help="bytes per part (default 8M)")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="one upload (the first --parallel value): total time and peak RSS",
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    size = size_option(args.size)
    part_size = parse_size(args.part_size, "--part-size")
    parallels = [int(text) for text in args.parallel.split(",")]
    if args.end_to_end:
        parallels = parallels[:1]

    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        source = work / "random.bin"
        make_random_file(source, size)
        cp_s, cp_sync_s = copy_baseline(source, work / "copy.bin")
        runs = [
            measured_upload(work, source, parallel=parallel, part_size=part_size)
            for parallel in parallels
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"file: {size / 1e6:.0f} MB of random bytes (in the page cache); parts of {part_size}")
    print(f"\n{'step':<48}{'seconds':>9}{'MB/s':>11}")
    rows = [("cp (same disk)", cp_s), ("cp + sync (same disk): the baseline", cp_sync_s)]
    for run in runs:
        t = run.times
        rows += [
            (f"[{run.parallel} parallel] client checksum (SHA-256 pass)", t.checksum),
            (f"[{run.parallel} parallel] hub: parts over loopback", t.parts),
            (f"[{run.parallel} parallel] hub: complete (join+SHA-256+VCF)", t.complete),
            (f"[{run.parallel} parallel] hub: parts + complete", t.parts + t.complete),
        ]
    for name, seconds in rows:
        print(f"{name:<48}{seconds:9.2f}{rate(size, seconds)}")
    print()
    for run in runs:
        t = run.times
        print(
            f"{run.parallel} parallel: upload {size / t.parts / 1e6:.0f} MB/s = "
            f"{cp_sync_s / t.parts:.2f}x cp + sync; complete {size / t.complete / 1e6:.0f} MB/s; "
            f"server peak RSS {run.peak_mib:.0f} MiB (at start {run.idle_mib:.0f} MiB); "
            f"CPU per GiB: server {run.cpu_s / (size / 2**30):.2f} s, "
            f"client (parts) {t.client_cpu / (size / 2**30):.2f} s"
        )
    if args.end_to_end:
        t = runs[0].times
        print(
            f"\nend to end, {size / 2**30:.1f} GiB: {t.parts + t.complete:.1f} s from the first "
            f"part to the hub's answer (parts {t.parts:.1f} s + join and checks "
            f"{t.complete:.1f} s; the client's own checksum pass before: {t.checksum:.1f} s); "
            f"server peak RSS {runs[0].peak_mib:.0f} MiB"
        )
    outcomes = ", ".join(sorted({run.times.outcome for run in runs}))
    print(
        f"complete answered {outcomes} "
        "(random bytes are not a VCF: expected 422 invalid_vcf after the full pass)"
    )


if __name__ == "__main__":
    main()
