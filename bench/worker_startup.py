"""Benchmark: how long `imputehub worker` takes from its start to taking on work.

A crashed or redeployed worker is replaced by a new process; until it logs `worker
started` it claims nothing. Each run starts a fresh process against a migrated SQLite
database and times it to that line, median of --repeat, next to the floor every worker
pays: the interpreter importing SQLAlchemy's asyncio engine. A benchmark that prints,
never a test:

    python bench/worker_startup.py
    python bench/worker_startup.py --repeat 11
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker_start(env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "imputehub", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "worker started" in line:
            elapsed = time.perf_counter() - started
            break
    else:
        raise SystemExit(f"the worker exited with {process.wait()} before it started")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return elapsed


def floor() -> float:
    started = time.perf_counter()
    code = "import sqlalchemy.ext.asyncio"
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
        env.update(IMPUTEHUB_DATA_DIR=str(Path(data)), IMPUTEHUB_LOG_FORMAT="text")
        subprocess.run(
            [sys.executable, "-m", "imputehub", "db", "upgrade"],
            env=env,
            check=True,
            capture_output=True,
        )
        worker_start(env)  # warm the file cache and .pyc files
        runs = [worker_start(env) for _ in range(options.repeat)]
    floors = [floor() for _ in range(options.repeat)]
    print(f"imputehub worker, start to 'worker started': {statistics.median(runs):.2f} s")
    print(f"python -c 'import sqlalchemy.ext.asyncio':    {statistics.median(floors):.2f} s")


if __name__ == "__main__":
    main()
