"""Benchmark: POST /api/v1/jobs, one client alone and then 8 at once, SQLite and PostgreSQL.

For each database: a fresh one (SQLite in a scratch data dir; PostgreSQL: a new database on
the local server, dropped afterwards), a service with a panel, and one user per client with
an API token and an uploaded input file (its VCF report made by the hub's own check). Then
`imputehub api` (the HTTP API without the worker, so nothing else writes) is driven by an
asyncio + httpx load generator in its own process: each client creates jobs from its file
one after another, on its own keep-alive connection.

Prints p50 and p99 of a creation with 1 client, then with N clients at once, and the ratio
p99(N) / p50(1): how much a creation waits for the others. Each is run with one API process,
then with two sharing the clients (`--api-processes`; client i talks to process i mod n, as
a load balancer would spread them): the scale-out the hub is built for, on both databases.
The jobs of each run stay in the database (a user's active-job limit is raised to allow it).
A benchmark, never a test:

    python bench/job_creation.py                          # 200 jobs per client, 8 clients
    python bench/job_creation.py --jobs 30 --databases sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path

# Run as `python bench/job_creation.py`: the helpers next to it are importable.
from _hub import (
    bench_panel,
    bench_service,
    free_port,
    hub_env,
    postgres_database,
    prepare_database,
    started,
)
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from tests.support.vcf import make_vcf  # _hub put the repository root on sys.path

from imputehub.accounts import tokens
from imputehub.db.models import ApiToken, StoredFile, User
from imputehub.files.vcf_check import check_bytes

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

LOADGEN = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import httpx

    clients, jobs = json.loads(sys.argv[1]), int(sys.argv[2])


    async def client(url, token, body, latencies):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=60) as http:
            for i in range(jobs):
                start = time.perf_counter()
                response = await http.post(url, json={**body, "name": f"job {i}"}, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 201:
                    raise SystemExit(f"{response.status_code}: {response.text}")


    async def main():
        latencies = []
        await asyncio.gather(
            *(client(c["url"], c["token"], c["body"], latencies) for c in clients)
        )
        latencies.sort()
        print(json.dumps({
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "count": len(latencies),
        }))


    asyncio.run(main())
    """
)


def seed(url: str, data_dir: Path, *, clients: int) -> list[dict[str, object]]:
    """A service, its panel, and per client a user with an API token and an input file."""
    now = datetime.now(UTC)
    content = make_vcf()  # 20 phased samples, 50 variants of hg19 chr20
    report = check_bytes([content]).to_dict()
    (data_dir / "storage" / "inputs").mkdir(parents=True, exist_ok=True)
    engine = create_engine(url.replace("+aiosqlite", ""))
    out: list[dict[str, object]] = []
    with Session(engine) as session, session.begin():
        service = bench_service(now)
        session.add(service)
        session.flush()
        panel = bench_panel(service.id, now)
        session.add(panel)
        session.flush()
        for i in range(clients):
            user = User(
                username=f"client{i}",
                password_hash="!",  # noqa: S106 - no password: the client uses its API token
                role="user",
                is_active=True,
                token_version=0,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            session.flush()
            key = f"inputs/{uuid.uuid4().hex}.vcf.gz"
            (data_dir / "storage" / key).write_bytes(content)
            record = StoredFile(
                user_id=user.id,
                kind="input",
                filename="study.chr20.vcf.gz",
                storage_key=key,
                size=len(content),
                sha256="0" * 64,
                validation=report,
                created_at=now,
            )
            token = tokens.new_api_token()
            session.add_all(
                [
                    record,
                    ApiToken(
                        user_id=user.id,
                        name="bench",
                        token_hash=tokens.hash_api_token(token),
                        prefix=token[:10],
                        created_at=now,
                    ),
                ]
            )
            session.flush()
            body = {
                "service_id": service.id,
                "reference_panel_id": panel.id,
                "build": "hg19",
                "phasing": "eagle",
                "input_file_ids": [record.id],
            }
            out.append({"token": token, "body": body})
    engine.dispose()
    return out


def drive(urls: list[str], clients: list[dict[str, object]], jobs: int) -> dict[str, float]:
    """Client i creates its jobs through API process i mod len(urls) (a load balancer's
    round robin, by client)."""
    spread = [{**c, "url": urls[i % len(urls)]} for i, c in enumerate(clients)]
    args = [sys.executable, "-c", LOADGEN, json.dumps(spread), str(jobs)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stdout}{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(database: str, work: Path, *, clients: int, jobs: int, api_processes: list[int]) -> None:
    data_dir = work / database
    data_dir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{data_dir / 'imputehub.db'}"
        else:
            url = stack.enter_context(postgres_database(PG_SERVER))
        prepare_database(url)
        everyone = seed(url, data_dir, clients=clients)
        env = hub_env(
            data_dir,
            IMPUTEHUB_DATABASE_URL=url,
            IMPUTEHUB_RATE_LIMIT_API="0",  # measured: the cost of a creation, not the limit
            IMPUTEHUB_MAX_ACTIVE_JOBS_PER_USER=str(10 * jobs + 10),
        )
        for processes in api_processes:
            with contextlib.ExitStack() as apis:
                urls = []
                for n in range(processes):
                    port = free_port()
                    base = f"http://127.0.0.1:{port}"
                    cmd = [sys.executable, "-m", "imputehub", "api", "--port", str(port)]
                    log = work / f"{database}-{processes}-{n}.log"
                    apis.enter_context(
                        started(cmd, env=env, log=log, probe=f"{base}/api/v1/health")
                    )
                    urls.append(f"{base}/api/v1/jobs")
                for url in urls:
                    drive([url], everyone[:1], max(3, jobs // 10))  # warm up each
                alone = drive(urls[:1], everyone[:1], jobs)
                crowd = drive(urls, everyone, jobs)
            print(
                f"{database:<10} {processes} API process{'es' if processes > 1 else '  '} | "
                f"1 client: p50 {alone['p50'] * 1000:7.1f} ms  p99 "
                f"{alone['p99'] * 1000:7.1f} ms | {clients} clients: p50 "
                f"{crowd['p50'] * 1000:7.1f} ms  p99 {crowd['p99'] * 1000:7.1f} ms | "
                f"p99({clients})/p50(1) = {crowd['p99'] / alone['p50']:.1f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=200, help="jobs per client")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--api-processes",
        default="1,2",
        help="how many `imputehub api` processes share the clients, one run each",
    )
    parser.add_argument("--dir", default=None, help="where the scratch data dirs go")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        for database in args.databases.split(","):
            run(
                database,
                work,
                clients=args.clients,
                jobs=args.jobs,
                api_processes=[int(n) for n in args.api_processes.split(",")],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
