"""Benchmark: POST /api/v1/jobs, one client alone and then 8 at once, SQLite and PostgreSQL.

For each database: a fresh one (SQLite in a scratch data dir; PostgreSQL: a new database on
the local server, dropped afterwards), a service with a panel, and one user per client with
an API token and an uploaded input file (its VCF report made by the hub's own check). Then
`imputehub api` (the HTTP API without the worker, so nothing else writes) is driven by an
asyncio + httpx load generator in its own process: each client creates jobs from its file
one after another, on its own keep-alive connection.

Prints p50 and p99 of a creation with 1 client, then with N clients at once, and the ratio
p99(N) / p50(1): how much a creation waits for the others. A benchmark, never a test:

    python bench/job_creation.py                          # 200 jobs per client, 8 clients
    python bench/job_creation.py --jobs 30 --databases sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from alembic import command

# Run as `python bench/job_creation.py`: the sibling benchmark is importable.
from api_reads import PASSWORD, free_port, started
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from imputehub.accounts import tokens
from imputehub.db import migrate
from imputehub.db.models import ApiToken, Base, ReferencePanel, Service, StoredFile, User
from imputehub.files import bgzf
from imputehub.files.vcf_check import check_bytes

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

LOADGEN = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import httpx

    url, clients, jobs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])


    async def client(token, body, latencies):
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
        await asyncio.gather(*(client(c["token"], c["body"], latencies) for c in clients))
        latencies.sort()
        print(json.dumps({
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "count": len(latencies),
        }))


    asyncio.run(main())
    """
)


def small_vcf() -> bytes:
    """A bgzipped, phased hg19 chr20 VCF: 20 samples, 50 variants."""
    rng = random.Random(1)
    names = [f"S{i}" for i in range(20)]
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=20,length=63025520>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"])
        + "\t"
        + "\t".join(names),
    ]
    for i in range(50):
        genotypes = [f"{rng.randint(0, 1)}|{rng.randint(0, 1)}" for _ in names]
        fields = ["20", str(60_000 + 100 * i), ".", "A", "G", ".", "PASS", ".", "GT"]
        lines.append("\t".join(fields + genotypes))
    return bgzf.compress(("\n".join(lines) + "\n").encode())


def prepare(url: str) -> None:
    """The schema from the models, stamped as migrated (`imputehub api` checks it)."""
    engine = create_engine(url.replace("+aiosqlite", ""))
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(migrate.alembic_config(url), "head")


def seed(url: str, data_dir: Path, *, clients: int) -> list[dict[str, object]]:
    """A service, its panel, and per client a user with an API token and an input file."""
    now = datetime.now(UTC)
    content = small_vcf()
    report = check_bytes([content]).to_dict()
    (data_dir / "storage" / "inputs").mkdir(parents=True, exist_ok=True)
    engine = create_engine(url.replace("+aiosqlite", ""))
    out: list[dict[str, object]] = []
    with Session(engine) as session, session.begin():
        service = Service(
            name="Bench service",
            slug="bench",
            api_type="michigan",
            base_url="https://imputation.example.org",
            supported_builds=["hg19"],
            api_config={},
            is_active=True,
            health_status="healthy",
            created_at=now,
            updated_at=now,
        )
        session.add(service)
        session.flush()
        panel = ReferencePanel(
            service_id=service.id,
            slug="bench-panel",
            panel_id="apps@bench@1.0.0",
            display_name="Bench panel",
            build="hg19",
            populations=["mixed"],
            is_active=True,
            created_at=now,
            updated_at=now,
        )
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


def drive(url: str, clients: list[dict[str, object]], jobs: int) -> dict[str, float]:
    args = [sys.executable, "-c", LOADGEN, url, json.dumps(clients), str(jobs)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stdout}{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(database: str, work: Path, *, clients: int, jobs: int) -> None:
    data_dir = work / database
    data_dir.mkdir(parents=True)
    pg_name = f"imputehub_bench_{uuid.uuid4().hex[:8]}"
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'imputehub.db'}"
    else:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    try:
        prepare(url)
        everyone = seed(url, data_dir, clients=clients)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
        env.update(
            IMPUTEHUB_DATA_DIR=str(data_dir),
            IMPUTEHUB_DATABASE_URL=url,
            IMPUTEHUB_ADMIN_USERNAME="admin",
            IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
            IMPUTEHUB_LOG_LEVEL="WARNING",
            IMPUTEHUB_ENGINE_BOOTSTRAP="false",
            IMPUTEHUB_RATE_LIMIT_API="0",  # measured: the cost of a creation, not the limit
            IMPUTEHUB_MAX_ACTIVE_JOBS_PER_USER=str(10 * jobs + 10),
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "imputehub", "api", "--port", str(port)]
        with started(cmd, env=env, log=work / f"{database}.log", probe=f"{base}/api/v1/health"):
            url_jobs = f"{base}/api/v1/jobs"
            drive(url_jobs, everyone[:1], max(3, jobs // 10))  # warm up
            alone = drive(url_jobs, everyone[:1], jobs)
            crowd = drive(url_jobs, everyone, jobs)
        print(
            f"{database:<10} 1 client: p50 {alone['p50'] * 1000:7.1f} ms  p99 "
            f"{alone['p99'] * 1000:7.1f} ms | {clients} clients: p50 "
            f"{crowd['p50'] * 1000:7.1f} ms  p99 {crowd['p99'] * 1000:7.1f} ms | "
            f"p99({clients})/p50(1) = {crowd['p99'] / alone['p50']:.1f}",
            flush=True,
        )
    finally:
        if database != "sqlite":
            with psycopg.connect(PG_SERVER, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=200, help="jobs per client")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--dir", default=None, help="where the scratch data dirs go")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        for database in args.databases.split(","):
            run(database, work, clients=args.clients, jobs=args.jobs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
