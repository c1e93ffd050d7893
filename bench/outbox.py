"""Benchmark: what writing an event with each job status change costs on PostgreSQL.

Every status change users hear of writes an event in its own transaction (notify/outbox.py),
and on PostgreSQL every transaction that writes an event first takes one advisory lock, so
event ids become visible in commit order (what `Last-Event-ID` resumption needs). That
serialises event writers. This measures, in one run, `--writers` concurrent writers each
committing `--changes` status changes, three ways:

  status only      a status-update row per change: what a change cost before events
  + event          the same plus its event, as the hub does (the lock taken)
  + event, no lock the same without the lock: the ids-in-order guarantee given up

and prints changes per second side by side. A benchmark that prints, never a test:

    python bench/outbox.py                                   # local PostgreSQL, 8 x 200
    python bench/outbox.py --writers 32 --changes 100
    python bench/outbox.py --database-url postgresql+psycopg://user@host/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

# Run as `python bench/outbox.py`: the helpers next to it are importable.
from _hub import bench_panel, bench_service, postgres_database, running_job

from imputehub.clock import SystemClock
from imputehub.config import Settings
from imputehub.db.migrate import upgrade
from imputehub.db.models import Job, JobStatusUpdate, User
from imputehub.domain.jobs import JobStatus
from imputehub.notify import outbox
from imputehub.runtime import Runtime, build_runtime

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MODES = ("status only", "+ event", "+ event, no lock")


async def _seed(runtime: Runtime, writers: int) -> list[str]:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(username="bench", password_hash="!", created_at=now, updated_at=now)  # noqa: S106
        service = bench_service(now)
        session.add_all([user, service])
        await session.flush()
        panel = bench_panel(service.id, now)
        session.add(panel)
        await session.flush()
        jobs = [
            running_job(user.id, service.id, panel.id, name=f"job {i}", now=now)
            for i in range(writers)
        ]
        session.add_all(jobs)
    return [job.id for job in jobs]


async def _writer(runtime: Runtime, job_id: str, changes: int, mode: str) -> None:
    for n in range(changes):
        async with runtime.db.session() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            now = runtime.clock.now()
            session.add(
                JobStatusUpdate(
                    job_id=job_id,
                    status="running",
                    progress=float(n % 90),
                    message="",
                    created_at=now,
                )
            )
            if mode != MODES[0]:
                if mode == MODES[2]:
                    session.sync_session.info["event_lock_held"] = True  # skip the lock
                outbox.job_changed(session, job, JobStatus.RUNNING, now=now, message="")


async def _run(runtime: Runtime, jobs: list[str], changes: int, mode: str) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(_writer(runtime, job, changes, mode) for job in jobs))
    return len(jobs) * changes / (time.perf_counter() - start)


async def measure(url: str, writers: int, changes: int, repeat: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_environ(
            {}, data_dir=Path(tmp), database_url=url, secret_key="b" * 40
        )
        runtime = build_runtime(settings, clock=SystemClock())
        try:
            jobs = await _seed(runtime, writers)
            for _ in range(repeat):
                for mode in MODES:  # interleaved, so drift hits all three alike
                    rates[mode].append(await _run(runtime, jobs, changes, mode))
        finally:
            await runtime.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="a PostgreSQL server")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers")
    parser.add_argument("--changes", type=int, default=200, help="status changes per writer")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with postgres_database(args.database_url) as url:
        upgrade(url)  # alembic runs its own event loop: before ours
        rates = asyncio.run(measure(url, args.writers, args.changes, args.repeat))

    print(
        f"{args.writers} writers x {args.changes} status changes, PostgreSQL, "
        f"median of {args.repeat}"
    )
    base = statistics.median(rates[MODES[0]])
    for mode in MODES:
        rate = statistics.median(rates[mode])
        print(f"  {mode:<18} {rate:8.0f} changes/s  ({rate / base:4.0%} of status only)")


if __name__ == "__main__":
    main()
